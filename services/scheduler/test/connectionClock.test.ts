import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionClock } from '../src/connectionClock.js';

test('time while the connection was down does not count, whether the outage ended or goes on', () => {
  const clock = new ConnectionClock();
  assert.equal(clock.connectedMsBetween(0, 10_000), 10_000);
  clock.down(2_000);
  assert.equal(clock.connected, false);
  assert.equal(clock.connectedMsBetween(0, 10_000), 2_000, 'down since 2 s');
  clock.up(7_000);
  assert.equal(clock.connected, true);
  assert.equal(clock.connectedMsBetween(0, 10_000), 5_000, '5 s of outage');
  assert.equal(clock.connectedMsBetween(3_000, 10_000), 3_000, 'a window that starts inside the outage');
  assert.equal(clock.connectedMsBetween(8_000, 10_000), 2_000, 'a window after it');
});

test('repeated disconnect events keep the first moment, and up without down changes nothing', () => {
  const clock = new ConnectionClock();
  clock.up(1_000);
  clock.down(2_000);
  clock.down(4_000);
  clock.up(6_000);
  clock.down(8_000);
  clock.up(9_000);
  assert.equal(clock.connectedMsBetween(0, 10_000), 5_000);
});
