import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runBench } from './bench.js';
import { writeReport } from './report.js';
import { SECTIONS } from './sections.js';
import type { BenchOptions } from './section.js';

const USAGE = `Usage: node bench/dist/src/main.js [options]   (or: npm run bench)

Starts a Paddock of its own and measures it beside raw Docker (dockerode) in the same run, then writes
latest.json and latest.md. Progress goes to stderr. Exits 1 if a job did not end as it should.

Options:
  --n N              counted samples per figure, each section after one warm-up (default 20)
  --burst N          jobs submitted at once in a burst (default 200)
  --burst-rounds N   counted bursts per side (default 2)
  --capacity N       containers at once, for the broker and the raw burst alike
                     (default: the broker's own default, max(8, 8 x CPUs) = ${Math.max(8, 8 * cpus().length)} here)
  --poll-ms N        state polling interval for cold_completed (default 10)
  --idle-instances N idle instances portdetect watches while its CPU is read (default 200)
  --xds-instances N  instances (3 open ports each) in the control plane's state for xds_push_ack
                     (default 1000)
  --download-mb N    size of the file ingress_throughput and relay_throughput download (default 50)
  --ledger-events N  usage events in billing's ledger when its rollups are timed (default 1000000)
  --image IMAGE      image of every container (default paddock/base:latest)
  --out DIR          where to write (default bench/results)
  -h, --help         this text

Environment: DOCKER_SOCKET (default /var/run/docker.sock).`;

const RESULTS = fileURLToPath(new URL('../../results/', import.meta.url));

class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`--${name} takes a whole number of at least 1, not "${value}"`);
  return n;
}

function parse(argv: string[]): { options: BenchOptions; out: string } | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      n: { type: 'string' },
      burst: { type: 'string' },
      'burst-rounds': { type: 'string' },
      capacity: { type: 'string' },
      'poll-ms': { type: 'string' },
      'idle-instances': { type: 'string' },
      'xds-instances': { type: 'string' },
      'download-mb': { type: 'string' },
      'ledger-events': { type: 'string' },
      image: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const options: BenchOptions = Object.freeze({
    samples: positiveInt('n', values.n, 20),
    burstJobs: positiveInt('burst', values.burst, 200),
    burstRounds: positiveInt('burst-rounds', values['burst-rounds'], 2),
    capacity: positiveInt('capacity', values.capacity, Math.max(8, 8 * cpus().length)),
    pollMs: positiveInt('poll-ms', values['poll-ms'], 10),
    idleInstances: positiveInt('idle-instances', values['idle-instances'], 200),
    xdsInstances: positiveInt('xds-instances', values['xds-instances'], 1000),
    downloadMb: positiveInt('download-mb', values['download-mb'], 50),
    ledgerEvents: positiveInt('ledger-events', values['ledger-events'], 1_000_000),
    image: values.image ?? 'paddock/base:latest',
  });
  return { options, out: resolve(values.out ?? RESULTS) };
}

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (parsed === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const report = await runBench(parsed.options, SECTIONS, {
    dockerSocket: process.env['DOCKER_SOCKET'] ?? '/var/run/docker.sock',
    log: (line) => process.stderr.write(`${line}\n`),
  });
  const written = await writeReport(parsed.out, report);
  process.stderr.write(`wrote ${written.json} and ${written.markdown}\n`);
  if (report.failures) {
    process.stderr.write(`bench: ${report.failures.length} failure(s):\n${report.failures.map((f) => `  ${f}`).join('\n')}\n`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
