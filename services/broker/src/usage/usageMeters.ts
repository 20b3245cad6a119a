import { readdir } from 'node:fs/promises';
import { topics, type Bus } from '@paddock/bus';
import type { ComputeUsage } from '@paddock/proto';
import type { Logger } from '@paddock/telemetry';
import { onBus } from '../unavailable.js';
import { cgroupLayout, folderOf, type CgroupLayout } from './cgroupLayout.js';
import { brokerCgroups, ExecutionCgroup, executionCgroupParent } from './executionCgroup.js';
import { UsageMeter } from './usageMeter.js';
import { UsagePublisher } from './usagePublisher.js';

/** Memory is looked at least this often, whatever the interval between events. */
const SAMPLE_MAX_MS = 1_000;

export interface UsageMetersOptions {
  readonly brokerId: string;
  /** Between two compute events of a running instance. */
  readonly intervalMs: number;
}

/**
 * Makes the usage meter of each instance this broker runs, reading the execution's cgroup on this host
 * (executionCgroupParent). On a host without the cgroup hierarchies it needs there is none, and that is
 * said once.
 */
export class UsageMeters {
  private readonly sampleMs: number;

  constructor(
    private readonly bus: Bus,
    private readonly opts: UsageMetersOptions,
    private readonly log: Logger,
    /** Aborted when the broker stops. */
    private readonly signal: AbortSignal,
    private readonly layout: CgroupLayout | null = cgroupLayout(),
  ) {
    this.sampleMs = Math.min(SAMPLE_MAX_MS, opts.intervalMs);
    if (!layout) log.error('this host has no cgroup hierarchy with cpuacct and memory (cgroup v1) nor a cgroup v2 one: compute usage is not measured');
  }

  /** The meter of an instance whose job has just started, looking from now on; null when usage cannot be measured here. */
  start(executionId: string, startedAtMs: number): UsageMeter | null {
    const meter = this.meter(executionId, startedAtMs, null);
    meter?.start();
    return meter;
  }

  /**
   * The meter of an instance a restarted broker adopts, going on from the last event stored for it (seq,
   * memory integral); not looking yet. Rejects with BusUnavailableError while NATS cannot tell.
   */
  async resume(executionId: string, startedAtMs: number): Promise<UsageMeter | null> {
    if (!this.layout) return null;
    const last = await onBus('read the last compute usage', () => this.bus.lastStored(topics.usageCompute, executionId));
    return this.meter(executionId, startedAtMs, last?.message ?? null);
  }

  /**
   * Removes the cgroups of this broker's executions that nothing holds any more (`held` says which it still
   * does): ended ones whose removal failed, or whose broker died before it. One still busy stays for the next
   * sweep. For the reconciliation to call once it has settled every execution it found.
   */
  async sweep(held: (executionId: string) => boolean): Promise<void> {
    if (!this.layout) return;
    const found = new Set<string>();
    for (const mount of this.layout.all) {
      const dir = folderOf(mount, brokerCgroups(this.opts.brokerId));
      if (dir === null) continue;
      // None yet, or not readable by this process: nothing there it could remove either.
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const entry of entries) if (entry.isDirectory()) found.add(entry.name);
    }
    for (const executionId of found) {
      if (held(executionId)) continue;
      const left = await new ExecutionCgroup(this.layout, executionCgroupParent(this.opts.brokerId, executionId)).remove();
      if (left.length === 0) this.log.warn({ executionId }, 'reconcile: removed the cgroup left by an ended execution');
    }
  }

  /**
   * When the broker stops: its folder of cgroups goes if nothing is left in it (instances still running keep
   * theirs there for the next broker process, and the runtime makes the folder again for the next container).
   */
  async stop(): Promise<void> {
    if (!this.layout) return;
    await new ExecutionCgroup(this.layout, brokerCgroups(this.opts.brokerId)).remove();
  }

  private meter(executionId: string, startedAtMs: number, resumeFrom: ComputeUsage | null): UsageMeter | null {
    if (!this.layout) return null;
    const cgroup = new ExecutionCgroup(this.layout, executionCgroupParent(this.opts.brokerId, executionId));
    const publisher = new UsagePublisher(this.bus, executionId, resumeFrom?.seq ?? 0, this.log, this.signal);
    const options = { executionId, brokerId: this.opts.brokerId, startedAtMs, sampleMs: this.sampleMs, intervalMs: this.opts.intervalMs, resumeFrom };
    return new UsageMeter(cgroup, publisher, options, this.log);
  }
}
