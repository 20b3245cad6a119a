import { execToEnd, jobContainer, removeContainer } from '../rawDocker.js';
import { ms, sampled, since, type BenchContext, type Figure, type Section } from '../section.js';

interface ColdSample {
  /** From just before create to the first stdout byte of the exec. */
  readonly firstOutputMs: number;
  /** From just before create until the exec has ended and the container is removed. */
  readonly completedMs: number;
}

/** The base image's idle command: a container that waits for execs. */
const IDLE = ['sleep', 'infinity'];
const ECHO = ['echo', 'hi'];

function checkEcho(result: { stdout: string; stderr: string; exitCode: number | null }): void {
  if (result.exitCode !== 0 || result.stdout !== 'hi\n') {
    throw new Error(`echo in a raw container exited ${result.exitCode} with ${JSON.stringify(result.stdout)} ${JSON.stringify(result.stderr)}`);
  }
}

async function coldSample(ctx: BenchContext): Promise<ColdSample> {
  const { docker, options, labels } = ctx;
  const t0 = performance.now();
  let firstOutputMs: number | undefined;
  const container = await docker.createContainer(jobContainer(options.image, IDLE, labels));
  try {
    await container.start();
    checkEcho(await execToEnd(container, ECHO, () => (firstOutputMs ??= since(t0))));
    await removeContainer(container);
  } catch (err) {
    await removeContainer(container).catch(() => {});
    throw err;
  }
  const completedMs = since(t0);
  if (firstOutputMs === undefined) throw new Error('the exec wrote nothing');
  return { firstOutputMs, completedMs };
}

/** Docker through dockerode, with nothing of Paddock in between: the baselines of the Paddock figures. */
export const raw: Section = {
  name: 'raw',
  async run(ctx) {
    const cold = await sampled(ctx, 'raw_cold, raw_cold_completed', () => coldSample(ctx), (s) => `${ms(s.firstOutputMs)} to first byte, ${ms(s.completedMs)} to removed`);

    const idle = await ctx.docker.createContainer(jobContainer(ctx.options.image, IDLE, ctx.labels));
    let exec: number[];
    try {
      await idle.start();
      exec = await sampled(
        ctx,
        'raw_exec',
        async () => {
          const t0 = performance.now();
          let first: number | undefined;
          checkEcho(await execToEnd(idle, ECHO, () => (first ??= since(t0))));
          if (first === undefined) throw new Error('the exec wrote nothing');
          return first;
        },
        ms,
      );
    } finally {
      await removeContainer(idle);
    }

    const figures: Figure[] = [
      { name: 'raw_cold', unit: 'ms', samples: cold.map((s) => s.firstOutputMs) },
      { name: 'raw_cold_completed', unit: 'ms', samples: cold.map((s) => s.completedMs) },
      { name: 'raw_exec', unit: 'ms', samples: exec },
    ];
    return figures;
  },
};
