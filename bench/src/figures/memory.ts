import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RunningPaddock } from '@paddock/testkit';
import { sampled, type Figure, type Section } from '../section.js';

/** The services whose memory is reported: process title, and the short name used in figure names. */
const SERVICES = [
  ['paddock-gateway', 'gateway'],
  ['paddock-scheduler', 'scheduler'],
  ['paddock-broker', 'broker'],
] as const;

type Service = (typeof SERVICES)[number][1];

/** One reading of every service's RSS in MB, by short name. */
export type RssReading = Readonly<Record<Service, number>>;

/** When the readings were taken. */
export type Phase = 'idle' | 'burst';

/** Resident set size of a process in MB (VmRSS of /proc/PID/status, kB / 1024). */
export async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`/proc/${pid}/status has no VmRSS line`);
  return Number(kb) / 1024;
}

/** The RSS of each Paddock service now. */
export async function readRss(paddock: RunningPaddock): Promise<RssReading> {
  const entries = await Promise.all(
    SERVICES.map(async ([title, short]) => {
      const pid = paddock.pidOf(title);
      if (pid === undefined) throw new Error(`${title} is not running`);
      return [short, await rssMb(pid)] as const;
    }),
  );
  return Object.fromEntries(entries) as Record<Service, number>;
}

/** `rss_<service>_<phase>` for each service, one sample per reading. */
export function rssFigures(phase: Phase, readings: readonly RssReading[]): Figure[] {
  return SERVICES.map(([, short]) => ({ name: `rss_${short}_${phase}`, unit: 'MB', samples: readings.map((r) => r[short]) }));
}

export function describeRss(reading: RssReading): string {
  return SERVICES.map(([, short]) => `${short} ${reading[short].toFixed(1)} MB`).join(', ');
}

/** Pause before and between idle readings, so that they are of a Paddock at rest. */
const SETTLE_MS = 2_000;
const BETWEEN_MS = 250;

/** Memory of the services at rest: after startup, and after the sections before this one warmed them up. */
export const memory: Section = {
  name: 'memory',
  async run(ctx) {
    ctx.progress(`rss_*_idle: letting Paddock settle for ${SETTLE_MS} ms`);
    await sleep(SETTLE_MS);
    const readings = await sampled(
      ctx,
      'rss_*_idle',
      async () => {
        await sleep(BETWEEN_MS);
        return readRss(ctx.paddock);
      },
      describeRss,
    );
    return rssFigures('idle', readings);
  },
};
