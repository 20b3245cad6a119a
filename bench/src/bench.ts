import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import Docker from 'dockerode';
import { startPaddock } from '@paddock/testkit';
import { machineInfo } from './machine.js';
import { removeContainer } from './rawDocker.js';
import { buildReport, type Report } from './report.js';
import type { BenchContext, BenchOptions, Figure, Section } from './section.js';

const loadAverage = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');

/** The label on every raw container a run makes; its value is the run's id. */
export const RUN_LABEL = 'io.paddock.bench-run';

export interface BenchIo {
  readonly dockerSocket: string;
  /** Where progress goes, one line at a time. */
  readonly log: (line: string) => void;
}

/**
 * One run: starts a Paddock of its own (the broker's capacity set to `options.capacity`), runs the sections
 * in order against it and against Docker directly, and stops everything it started, also on failure.
 */
export async function runBench(options: BenchOptions, sections: readonly Section[], io: BenchIo): Promise<Report> {
  const docker = new Docker({ socketPath: io.dockerSocket });
  await docker.ping();
  await docker
    .getImage(options.image)
    .inspect()
    .catch((err: unknown) => {
      throw new Error(`image ${options.image} is not in the Docker engine (run \`npm run setup\`)`, { cause: err });
    });
  const machine = await machineInfo(docker);
  const runId = randomBytes(6).toString('hex');
  const failures: string[] = [];
  const started = performance.now();
  const progress = (message: string) => io.log(`[bench ${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}`);

  // Other work on the machine moves the figures: the load says whether this run had it to itself.
  progress(`load average ${loadAverage()}; starting Paddock (broker capacity ${options.capacity})`);
  const paddock = await startPaddock({
    env: {
      PADDOCK_BROKER_CAPACITY: String(options.capacity),
      // One owner submits everything: its limit must not be what holds a burst back, the capacity is.
      PADDOCK_MAX_RUNNING_PER_OWNER: String(options.capacity),
      PADDOCK_DEFAULT_IMAGE: options.image,
    },
  });
  const ctx: BenchContext = {
    options,
    docker,
    paddock,
    labels: { [RUN_LABEL]: runId },
    progress,
    fail: (message) => failures.push(message),
  };
  const figures: Figure[] = [];
  try {
    for (const section of sections) {
      progress(`section ${section.name}`);
      figures.push(...(await section.run(ctx)));
    }
  } finally {
    progress('stopping Paddock');
    try {
      await paddock.stop();
    } finally {
      const left = await docker.listContainers({ all: true, filters: { label: [`${RUN_LABEL}=${runId}`] } });
      await Promise.all(left.map((c) => removeContainer(docker.getContainer(c.Id))));
    }
  }
  progress(`done; load average ${loadAverage()}`);
  return buildReport(machine, options, figures, failures);
}
