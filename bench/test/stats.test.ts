import assert from 'node:assert/strict';
import { test } from 'node:test';
import { summarize } from '../src/stats.js';

test('one sample is its own min, median and p95', () => {
  assert.deepEqual(summarize([42]), { min: 42, median: 42, p95: 42, n: 1 });
});

test('the median of an odd count is the middle sample, whatever the order', () => {
  assert.deepEqual(summarize([9, 1, 5]), { min: 1, median: 5, p95: 9, n: 3 });
});

test('the median of an even count is the mean of the two middle samples', () => {
  assert.equal(summarize([4, 1, 3, 2]).median, 2.5);
  assert.equal(summarize([10, 20]).median, 15);
});

test('p95 is the nearest rank: the 19th of 20 samples, the 95th of 100', () => {
  const twenty = Array.from({ length: 20 }, (_, i) => i + 1).reverse();
  assert.equal(summarize(twenty).p95, 19);
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(summarize(hundred).p95, 95);
  assert.equal(summarize([1, 2, 3, 4, 5]).p95, 5, 'below 20 samples it is the largest');
});

test('the samples given are not reordered', () => {
  const samples = [3, 1, 2];
  summarize(samples);
  assert.deepEqual(samples, [3, 1, 2]);
});

test('no samples, or one that is not a finite number, is an error', () => {
  assert.throws(() => summarize([]), RangeError);
  assert.throws(() => summarize([1, Number.NaN]), RangeError);
  assert.throws(() => summarize([Number.POSITIVE_INFINITY]), RangeError);
});
