import type { ComputeUsage } from '@paddock/proto';
import type { Logger } from '@paddock/telemetry';
import type { CgroupReading, ExecutionCgroup } from './executionCgroup.js';
import { MemoryIntegral } from './memoryIntegral.js';
import type { UsagePublisher, UsageTotals } from './usagePublisher.js';

const NS_PER_MS = 1_000_000;
/** Pauses between attempts at removing the ended execution's cgroup while the kernel says it is busy. */
const REMOVE_PAUSES_MS = [100, 200, 400, 800];

export interface UsageMeterOptions {
  readonly executionId: string;
  readonly brokerId: string;
  /** When the container started (the engine's time for an adopted one). */
  readonly startedAtMs: number;
  /** Between two looks at the cgroup (memory is integrated from them). */
  readonly sampleMs: number;
  /** Between two events while the instance runs. */
  readonly intervalMs: number;
  /** The last event stored for the execution, when a broker adopts its instance: totals go on from it. */
  readonly resumeFrom: ComputeUsage | null;
}

/** How the instance ended, for its final event. */
export interface UsageEnd {
  /** When the job ended, or null when nobody knows (it vanished, or ended while no broker watched). */
  readonly endedAtMs: number | null;
}

/**
 * The compute usage of one instance: looks at its cgroup every `sampleMs` (a few small files), publishes
 * its totals every `intervalMs` while it runs, and once more, final, when it has ended. Totals never go
 * back: each event's figures are at least those of the one before, whatever a clock or a reading says.
 */
export class UsageMeter {
  private readonly memory: MemoryIntegral;
  private cpuNanos = 0;
  private read = false;
  /** The figures of the last event made, which the next may not go below. */
  private floor: { cpuMs: number; memoryMibMs: number; wallMs: number; atMs: number };
  /** Looks since the last event: one event every `intervalMs / sampleMs` looks, so timer jitter skips none. */
  private looks = 0;
  private timer: NodeJS.Timeout | null = null;
  private ended: Promise<void> | null = null;
  private missingTold = false;

  constructor(
    private readonly cgroup: ExecutionCgroup,
    private readonly publisher: UsagePublisher,
    private readonly opts: UsageMeterOptions,
    private readonly log: Logger,
  ) {
    const last = opts.resumeFrom;
    this.memory = new MemoryIntegral(last?.memoryMibMsTotal ?? 0, last?.atMs ?? opts.startedAtMs);
    this.floor = { cpuMs: last?.cpuMsTotal ?? 0, memoryMibMs: last?.memoryMibMsTotal ?? 0, wallMs: last?.wallMsTotal ?? 0, atMs: last?.atMs ?? 0 };
    this.cpuNanos = (last?.cpuMsTotal ?? 0) * NS_PER_MS;
  }

  /** Whether the execution's final event is already stored (published by the broker before a crash). */
  get finalPublished(): boolean {
    return this.opts.resumeFrom?.final ?? false;
  }

  /** Starts looking and publishing, from a first look now; a second call does nothing. */
  start(): void {
    if (this.timer || this.ended || this.finalPublished) return;
    this.sample();
    this.timer = setInterval(() => this.tick(), this.opts.sampleMs);
    this.timer.unref();
  }

  /** Stops looking (the job ended, or the broker stops); what was offered is still published. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * After the instance stopped: one last look at the cgroup, which outlives the container (so its CPU count
   * is complete), the final event, published however long NATS takes, then the cgroup removed. Rejects with
   * BrokerStoppingError when the broker stops first: the next process adopts the instance and ends it.
   * Safe to call again.
   */
  end(how: UsageEnd): Promise<void> {
    this.ended ??= this.publishFinal(how);
    return this.ended;
  }

  private async publishFinal(how: UsageEnd): Promise<void> {
    this.stop();
    if (!this.finalPublished) {
      const look = this.look();
      const reading = look === 'unreadable' ? null : look;
      if (reading) this.cpuNanos = Math.max(this.cpuNanos, reading.cpuNanos);
      if (reading || this.read || this.opts.resumeFrom) {
        // Without the job's end, the last time it was seen running is as far as it is known to have run.
        const endedAtMs = how.endedAtMs ?? this.memory.lastSampleAtMs ?? this.opts.resumeFrom?.atMs ?? this.opts.startedAtMs;
        this.publisher.offer(this.totals(endedAtMs, true));
      }
      await this.publisher.flushed();
    }
    await this.removeCgroup();
  }

  /**
   * Tries a few times: the runtime may still be tearing the container's own cgroup down inside it. What is
   * left then goes with the broker's next reconciliation (UsageMeters.sweep).
   */
  private async removeCgroup(): Promise<void> {
    for (const pauseMs of [...REMOVE_PAUSES_MS, null]) {
      const left = await this.cgroup.remove();
      if (left.length === 0) return;
      if (pauseMs === null) {
        this.log.warn({ executionId: this.opts.executionId, left }, 'the cgroup of an ended execution could not be removed yet; the next reconciliation tries again');
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  }

  private tick(): void {
    this.sample();
    if (++this.looks < Math.max(1, Math.round(this.opts.intervalMs / this.opts.sampleMs))) return;
    this.looks = 0;
    // Nothing read: figures made of nothing would be billed as if measured.
    if (this.read) this.publisher.offer(this.totals(this.memory.lastSampleAtMs ?? Date.now(), false));
  }

  private sample(): void {
    const reading = this.look();
    if (reading === 'unreadable') return;
    if (!reading) return this.tellMissing();
    this.read = true;
    this.cpuNanos = Math.max(this.cpuNanos, reading.cpuNanos);
    this.memory.add(Date.now(), reading.memoryBytes);
  }

  /** The cgroup's figures now; null when it does not exist. */
  private look(): CgroupReading | null | 'unreadable' {
    try {
      return this.cgroup.read();
    } catch (err) {
      this.log.warn({ err, executionId: this.opts.executionId }, 'reading the cgroup failed');
      return 'unreadable';
    }
  }

  /** Totals as of `atMs` (the event's at_ms), none below the last event's. */
  private totals(atMs: number, final: boolean): UsageTotals {
    const cpuMs = Math.max(this.floor.cpuMs, Math.floor(this.cpuNanos / NS_PER_MS));
    const memoryMibMs = Math.max(this.floor.memoryMibMs, Math.floor(this.memory.totalAt(atMs)));
    const wallMs = Math.max(this.floor.wallMs, Math.round(atMs - this.opts.startedAtMs));
    const at = Math.max(this.floor.atMs, Math.round(atMs));
    this.floor = { cpuMs, memoryMibMs, wallMs, atMs: at };
    return { executionId: this.opts.executionId, brokerId: this.opts.brokerId, cpuMsTotal: cpuMs, memoryMibMsTotal: memoryMibMs, wallMsTotal: wallMs, final, atMs: at };
  }

  private tellMissing(): void {
    if (this.missingTold) return;
    this.missingTold = true;
    this.log.error(
      { executionId: this.opts.executionId, cgroup: this.cgroup.path },
      "the execution's cgroup is not on this host: its compute usage is not measured (the Docker engine must use the cgroupfs driver)",
    );
  }
}
