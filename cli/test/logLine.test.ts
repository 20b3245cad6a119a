import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatLogLine } from '../src/logLine.js';

test('a pino line becomes level, message and extra fields', () => {
  const time = new Date(2024, 0, 2, 3, 4, 5).getTime();
  const line = JSON.stringify({ level: 30, time, pid: 1, service: 'gateway', msg: 'listening', port: 7070, host: '127.0.0.1', note: 'two words' });
  assert.equal(formatLogLine(line), '03:04:05 INFO  listening port=7070 host=127.0.0.1 note="two words"');
});

test('an error brings its stack', () => {
  const line = JSON.stringify({ level: 50, msg: 'boom', err: { type: 'Error', message: 'bad', stack: 'Error: bad\n    at x' } });
  assert.equal(formatLogLine(line), 'ERROR boom\nError: bad\n    at x');
});

test('anything else is printed as it is', () => {
  for (const line of ['plain text', '{"not":"pino"}', '[1,2]', '{broken', '42']) assert.equal(formatLogLine(line), line);
});
