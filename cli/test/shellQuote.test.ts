import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { shellQuote } from '../src/shellQuote.js';

test('safe arguments stay as they are', () => {
  assert.equal(shellQuote(['ls', '-la', '/tmp/a_b-c.txt', 'K=V', 'a@b:c,d%e+f^g']), 'ls -la /tmp/a_b-c.txt K=V a@b:c,d%e+f^g');
});

test('anything else is single-quoted, quotes inside escaped', () => {
  assert.equal(shellQuote(['echo', 'hello world']), "echo 'hello world'");
  assert.equal(shellQuote(["it's"]), `'it'\\''s'`);
  assert.equal(shellQuote(['']), "''");
  assert.equal(shellQuote(['$HOME', '*', 'a;b', '`x`']), `'$HOME' '*' 'a;b' '\`x\`'`);
});

test('a real shell splits the line back into the same arguments', () => {
  const args = ['plain', 'two words', "it's", '', '$HOME', '"dq"', 'back\\slash', 'tab\there', 'new\nline', '*', '!bang', 'ünïcødé', "''"];
  const out = execFileSync('sh', ['-c', `printf '%s\\0' ${shellQuote(args)}`], { encoding: 'utf8' });
  assert.deepEqual(out.split('\0').slice(0, -1), args);
});
