import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';

/** The settings of one chaos run, complete and checked. */
export interface ChaosOptions {
  /** Executions submitted (each one accepted is checked at the end). */
  readonly executions: number;
  /** SIGKILLs delivered, one part at a time. */
  readonly kills: number;
  /** Time between two kills. */
  readonly killEveryMs: number;
  /** How long a killed part may take to be running again before the run counts it as not back. */
  readonly backWithinMs: number;
  /** After the last kill: how long everything may take to come back and every execution to end. */
  readonly settleTimeoutMs: number;
  /** Numbered lines each job prints. */
  readonly lines: number;
  /** Size of the input file each Python job is given. */
  readonly inputFileBytes: number;
  /** Seeds the plan (kinds, durations, which part is killed when), so that a run can be repeated. */
  readonly seed: number;
  readonly image: string;
}

export const USAGE = `Usage: node bench/dist/src/chaos/main.js [options]   (or: npm run chaos)

Starts a Paddock of its own (paddock up), runs mixed executions on it while killing -9 a random part
(gateway, scheduler, broker, nats-server, PostgreSQL) every few seconds, lets everything come back, then
checks every accepted execution: its final state, once; its output, complete and in order; its workspace
ZIP; that no container is left; that no job ran twice. Writes chaos.json and chaos.md. Progress goes to
stderr. Exits 1 if anything was lost, duplicated, wrong or orphaned, or a killed part did not come back.

Options:
  --executions N        executions submitted (default 300)
  --kills N             SIGKILLs, cycling through every part in a shuffled order (default 100)
  --kill-every-ms N     time between kills (default 3000)
  --back-within-ms N    a killed part must be running again within this (default 60000)
  --settle-timeout-ms N after the last kill, time for everything to come back and end (default 240000)
  --lines N             numbered lines each job prints (default 20)
  --input-kb N          size of each Python job's input file in KiB (default 64)
  --seed N              seed of the plan, to repeat a run (default: random, printed)
  --image IMAGE         image of every execution (default paddock/base:latest)
  --out DIR             where to write (default bench/results)
  -h, --help            this text

Environment: DOCKER_SOCKET (default /var/run/docker.sock).`;

export class ChaosUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChaosUsageError';
  }
}

function wholeNumber(name: string, value: string | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(n) || n < min) throw new ChaosUsageError(`--${name} takes a whole number of at least ${min}, not "${value}"`);
  return n;
}

/** The command line as options, or 'help'; `defaultOut` is used when --out is not given. */
export function parseChaosArgs(argv: readonly string[], defaultOut: string): { options: ChaosOptions; out: string } | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      executions: { type: 'string' },
      kills: { type: 'string' },
      'kill-every-ms': { type: 'string' },
      'back-within-ms': { type: 'string' },
      'settle-timeout-ms': { type: 'string' },
      lines: { type: 'string' },
      'input-kb': { type: 'string' },
      seed: { type: 'string' },
      image: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const options: ChaosOptions = Object.freeze({
    executions: wholeNumber('executions', values.executions, 300, 1),
    kills: wholeNumber('kills', values.kills, 100, 0),
    killEveryMs: wholeNumber('kill-every-ms', values['kill-every-ms'], 3000, 100),
    backWithinMs: wholeNumber('back-within-ms', values['back-within-ms'], 60_000, 1000),
    settleTimeoutMs: wholeNumber('settle-timeout-ms', values['settle-timeout-ms'], 240_000, 1000),
    lines: wholeNumber('lines', values.lines, 20, 1),
    inputFileBytes: wholeNumber('input-kb', values['input-kb'], 64, 1) * 1024,
    seed: wholeNumber('seed', values.seed, randomInt(1, 2 ** 31), 0),
    image: values.image ?? 'paddock/base:latest',
  });
  return { options, out: values.out ?? defaultOut };
}
