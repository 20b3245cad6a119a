// A test may import the testkit, and node:test's test() needs no await; any other promise does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort } from '@paddock/testkit';
import { type Shape } from '../src/shape.js';

test('a test may use the testkit and await its promises', async () => {
  const shape: Shape = { sides: await freePort() };
  assert.ok(shape.sides > 0);
});

test('a promise left floating in a test is reported', () => {
  freePort(); // expect-lint: @typescript-eslint/no-floating-promises
});
