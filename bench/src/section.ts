import type Docker from 'dockerode';
import type { RunningPaddock } from '@paddock/testkit';

/** What a figure is measured in. */
export type Unit = 'ms' | 'MB' | 'MB/s' | 'jobs/s' | 'events/s' | '%';

/** One measured quantity and its samples; a Paddock figure names the raw-Docker figure it is compared with. */
export interface Figure {
  readonly name: string;
  readonly unit: Unit;
  readonly samples: readonly number[];
  /** A figure of the same run: this figure's ratio is its median over the baseline's median. */
  readonly baseline?: string;
}

/** The settings of one run, complete and checked (see main.ts for the flags that set them). */
export interface BenchOptions {
  /** Counted samples per figure (each section adds its own warm-up run). */
  readonly samples: number;
  /** Jobs submitted at once in a burst. */
  readonly burstJobs: number;
  /** Counted bursts per side (raw and Paddock). */
  readonly burstRounds: number;
  /** Containers at once: the broker's capacity, and the raw burst's concurrency. */
  readonly capacity: number;
  /** How often an execution's state is polled when waiting for it. */
  readonly pollMs: number;
  /** Idle instances portdetect watches while its CPU is read. */
  readonly idleInstances: number;
  /** Instances (of 3 open ports each) in the control plane's state while xds_push_ack is measured. */
  readonly xdsInstances: number;
  /** Size of the file ingress_throughput and relay_throughput download, in MB (10^6 bytes). */
  readonly downloadMb: number;
  /** Usage events in billing's ledger when its rollups are timed. */
  readonly ledgerEvents: number;
  readonly image: string;
}

/** What a section measures with. */
export interface BenchContext {
  readonly options: BenchOptions;
  readonly docker: Docker;
  /** A whole Paddock, started for this run alone. */
  readonly paddock: RunningPaddock;
  /** Labels every raw container of this run carries, so whatever is left at the end is found and removed. */
  readonly labels: Readonly<Record<string, string>>;
  /** Says on stderr what is being measured now. */
  progress(message: string): void;
  /** Records something that went wrong without stopping the run: the run then exits non-zero. */
  fail(message: string): void;
}

/**
 * One part of the benchmark. Sections run in the order of the list in sections.ts, against the same
 * Paddock and Docker; each does its own warm-up and returns its figures.
 */
export interface Section {
  readonly name: string;
  run(ctx: BenchContext): Promise<Figure[]>;
}

/** How many times `sampled` measures; both default to the run's settings. */
export interface SampleCount {
  /** Counted samples (default `ctx.options.samples`). */
  readonly count?: number;
  /** Uncounted warm-up runs before them (default 1). */
  readonly warmups?: number;
}

/**
 * Runs `measure` as an uncounted warm-up (once unless `warmups` says otherwise), then `ctx.options.samples`
 * times (or `count`), saying on stderr which run it is; `describe` turns a sample into the text shown.
 */
export async function sampled<T>(ctx: BenchContext, what: string, measure: () => Promise<T>, describe: (sample: T) => string, counts: SampleCount = {}): Promise<T[]> {
  const n = counts.count ?? ctx.options.samples;
  const warmups = counts.warmups ?? 1;
  for (let i = 1; i <= warmups; i++) {
    ctx.progress(`${what} warm-up${warmups > 1 ? ` ${i}/${warmups}` : ''}: ${describe(await measure())} (not counted)`);
  }
  const samples: T[] = [];
  for (let i = 1; i <= n; i++) {
    const sample = await measure();
    samples.push(sample);
    ctx.progress(`${what} ${i}/${n}: ${describe(sample)}`);
  }
  return samples;
}

/** Milliseconds since `t0` (a `performance.now()` reading). */
export function since(t0: number): number {
  return performance.now() - t0;
}

export function ms(value: number): string {
  return `${value.toFixed(1)} ms`;
}
