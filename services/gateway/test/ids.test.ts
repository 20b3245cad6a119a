// Execution and user ids: the API lists by id, NATS subjects and host names carry them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { topics } from '@paddock/bus';
import { newId, newToken } from '../src/ids.js';

test('an id is 22 lowercase characters, valid in a NATS subject token and a DNS label', () => {
  for (let i = 0; i < 1000; i++) {
    const id = newId();
    assert.equal(id.length, 22);
    assert.match(id, /^[0-9a-z]{22}$/);
    assert.equal(id, id.toLowerCase());
    assert.doesNotMatch(id, /[ilou]/, 'Crockford base32 leaves out letters that read as digits');
    assert.equal(topics.executionRequested.subject(id), `paddock.v1.execution.${id}.requested`);
  }
});

test('ids sort by the time they were made', () => {
  const times = [0, 1, 31, 32, 33, 1023, 1024, 1_000_000, Date.UTC(2020, 0, 1), Date.now(), Date.UTC(2100, 0, 1), 2 ** 50 - 1];
  for (let i = 1; i < times.length; i++) {
    const earlier = newId(times[i - 1]);
    const later = newId(times[i]);
    assert.ok(earlier < later, `id of ${times[i - 1]} (${earlier}) sorts before id of ${times[i]} (${later})`);
  }
  // Milliseconds in a row, each with its own random tail: the time prefix decides the order.
  const start = Date.now();
  const sequence = Array.from({ length: 2000 }, (_, i) => newId(start + i));
  assert.deepEqual([...sequence].sort(), sequence);
});

test('ids made one after another by the clock never sort before an earlier one', async () => {
  const made: string[] = [];
  for (let i = 0; i < 5; i++) {
    made.push(newId());
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.deepEqual([...made].sort(), made);
});

test('ids are unique, also within one millisecond', () => {
  const now = Date.now();
  const sameMs = new Set(Array.from({ length: 100_000 }, () => newId(now)));
  assert.equal(sameMs.size, 100_000);
  const any = new Set(Array.from({ length: 100_000 }, () => newId()));
  assert.equal(any.size, 100_000);
});

test('a token is pdk_ and 256 random bits, URL-safe, and never repeats', () => {
  const tokens = new Set<string>();
  for (let i = 0; i < 10_000; i++) {
    const t = newToken();
    assert.match(t, /^pdk_[A-Za-z0-9_-]{43}$/);
    tokens.add(t);
  }
  assert.equal(tokens.size, 10_000);
});
