import type { Readable, Writable } from 'node:stream';
import type { Env } from '@paddock/config';
import type { Interrupts } from './interrupts.js';

/** Everything a command may use from the outside world; main.ts builds it from `process`, tests from in-memory streams. */
export interface Context {
  readonly env: Env;
  readonly stdin: Readable;
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly interrupts: Interrupts;
  /** The Node binary running this CLI; `paddock up` starts the services with the same one. */
  readonly nodePath: string;
  /** The Paddock checkout this CLI belongs to (services/, images/). */
  readonly repoRoot: string;
}
