import type { LaunchReply } from '@paddock/proto';
import type { StopCause } from '../instanceStore.js';
import type { OutputPublisher } from '../output.js';
import type { UsageMeter } from '../usage/usageMeter.js';

/**
 * One execution's instance on this broker. What may be done with it depends on its phase, and each phase
 * carries exactly what exists in it:
 *
 *   provisioning -> running -> stopping -> ending
 *         \             \________________/^
 *          \____________________________/
 *
 * A cancel while provisioning is remembered and applied once the job runs; once ending, nothing stops it.
 */
export interface Instance {
  readonly executionId: string;
  readonly ownerId: string;
  readonly output: OutputPublisher;
  /** The time limit the deadline was set from, for the reason of a timeout. */
  readonly timeoutMs: number;
  /** The workspace's disk limit, 0 for none. */
  readonly diskLimitBytes: number;
  phase: Phase;
}

export type Phase = Provisioning | Running | Stopping | Ending;

export interface Provisioning {
  readonly name: 'provisioning';
  /** The launch in progress, to answer a retried Launch with the same result. */
  readonly reply: Promise<LaunchReply>;
  /** A stop asked for before the job ran. */
  readonly stopAsked: StopCause | null;
}

export interface Running {
  readonly name: 'running';
  readonly run: Run;
}

export interface Stopping {
  readonly name: 'stopping';
  readonly run: Run;
  readonly cause: StopCause;
}

/** The end is being recorded: too late to cancel. */
export interface Ending {
  readonly name: 'ending';
  readonly run: Run | null;
}

/** What exists once the job has started. */
export interface Run {
  readonly instanceId: string;
  readonly startedAtMs: number;
  /** Resolves when the job's output stream has ended. */
  readonly outputDone: Promise<void>;
  readonly deadline: NodeJS.Timeout | null;
  /** Looks every second whether the workspace is full, when it has a disk limit. */
  readonly diskWatch: NodeJS.Timeout | null;
  /** Measures and publishes its compute usage; null where it cannot be measured. */
  readonly usage: UsageMeter | null;
}

/** The run of an instance that has one. */
export function runOf(phase: Phase): Run | null {
  return phase.name === 'provisioning' ? null : phase.run;
}

/** Stops the timers of a run that has ended (its usage meter stops looking; its final event is finish's). */
export function clearRun(run: Run): void {
  if (run.deadline) clearTimeout(run.deadline);
  if (run.diskWatch) clearInterval(run.diskWatch);
  run.usage?.stop();
}
