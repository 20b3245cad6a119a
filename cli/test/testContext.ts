import { Readable, PassThrough } from 'node:stream';
import type { Env } from '@paddock/config';
import type { Context } from '../src/context.js';
import { Interrupts } from '../src/interrupts.js';

/** A Context on in-memory streams, and what the command wrote to them. */
export function testContext(env: Env, opts: { stdin?: string; repoRoot?: string } = {}) {
  const out = { stdout: '', stderr: '' };
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.setEncoding('utf8').on('data', (chunk: string) => (out.stdout += chunk));
  stderr.setEncoding('utf8').on('data', (chunk: string) => (out.stderr += chunk));
  const interrupts = new Interrupts();
  const ctx: Context = {
    env,
    stdin: Readable.from(opts.stdin === undefined ? [] : [Buffer.from(opts.stdin)]),
    stdout,
    stderr,
    interrupts,
    nodePath: process.execPath,
    repoRoot: opts.repoRoot ?? '/nonexistent',
  };
  return { ctx, out, interrupts };
}
