import assert from 'node:assert/strict';
import { test } from 'node:test';
import { numberOption, parseArgs } from '../src/args.js';
import { UsageError } from '../src/errors.js';

const SPECS = {
  image: { type: 'string' },
  env: { type: 'list', short: 'e' },
  detach: { type: 'boolean', short: 'd' },
} as const;

test('long, short, inline and repeated options', () => {
  const parsed = parseArgs(['--image', 'py', '-e', 'A=1', '--env=B=2', '-d', 'x', 'y'], SPECS);
  assert.deepEqual(parsed.options, { image: 'py', env: ['A=1', 'B=2'], detach: true });
  assert.deepEqual(parsed.positionals, ['x', 'y']);
  assert.deepEqual(parsed.rest, []);
  assert.equal(parsed.help, false);
});

test('defaults when nothing is given', () => {
  assert.deepEqual(parseArgs([], SPECS).options, { image: undefined, env: [], detach: false });
});

test('the last value of a string option wins', () => {
  assert.equal(parseArgs(['--image', 'a', '--image=b'], SPECS).options.image, 'b');
});

test('everything after -- is passed on untouched', () => {
  const parsed = parseArgs(['-d', '--', 'ls', '--image', '-e', '--'], SPECS);
  assert.equal(parsed.options.detach, true);
  assert.deepEqual(parsed.rest, ['ls', '--image', '-e', '--']);
});

test('stopAtPositional ends options at the first positional', () => {
  const parsed = parseArgs(['--image', 'x', 'python3', '-c', 'print(1)', '--image', 'y'], SPECS, { stopAtPositional: true });
  assert.equal(parsed.options.image, 'x');
  assert.deepEqual(parsed.positionals, []);
  assert.deepEqual(parsed.rest, ['python3', '-c', 'print(1)', '--image', 'y']);
});

test('a value may look like an option or be empty', () => {
  assert.equal(parseArgs(['--image', '--weird'], SPECS).options.image, '--weird');
  assert.equal(parseArgs(['--image='], SPECS).options.image, '');
});

test('- alone is a positional', () => {
  assert.deepEqual(parseArgs(['-'], SPECS).positionals, ['-']);
});

test('-h and --help set help', () => {
  assert.equal(parseArgs(['-h'], SPECS).help, true);
  assert.equal(parseArgs(['x', '--help'], SPECS).help, true);
});

test('usage errors name the command and the problem', () => {
  assert.throws(() => parseArgs(['--nope'], SPECS, { command: 'run' }), (err: unknown) => {
    assert.ok(err instanceof UsageError);
    assert.equal(err.message, 'unknown option --nope');
    assert.equal(err.command, 'run');
    return true;
  });
  assert.throws(() => parseArgs(['-x'], SPECS), /unknown option -x/);
  assert.throws(() => parseArgs(['--image'], SPECS), /--image needs a value/);
  assert.throws(() => parseArgs(['-e'], SPECS), /-e needs a value/);
  assert.throws(() => parseArgs(['--detach=yes'], SPECS), /--detach takes no value/);
});

test('numberOption checks type and range', () => {
  assert.equal(numberOption('--cpus', '1.5', { min: 0, exclusiveMin: true }), 1.5);
  assert.equal(numberOption('--limit', '20', { integer: true, min: 1 }), 20);
  assert.throws(() => numberOption('--cpus', '0', { min: 0, exclusiveMin: true }), /--cpus expects a number above 0, got "0"/);
  assert.throws(() => numberOption('--limit', '2.5', { integer: true, min: 1 }), /--limit expects an integer of at least 1/);
  assert.throws(() => numberOption('--memory', 'lots', { integer: true, min: 1 }), UsageError);
  assert.throws(() => numberOption('--memory', '', { integer: true }), UsageError);
});
