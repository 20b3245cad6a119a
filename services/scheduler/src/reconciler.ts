import type { Logger } from '@paddock/telemetry';
import type { BrokerRegistry, Sighting } from './brokers.js';
import type { ConnectionClock } from './connectionClock.js';
import type { JobStore, JobView } from './jobStore.js';
import { ACTIVE, isFinal, type JobState } from './states.js';

/** What the reconciler knows of one broker. */
export interface BrokerView {
  readonly brokerId: string;
  /** Its latest heartbeats, oldest first. */
  readonly sightings: readonly Sighting[];
  /** Time this process was connected to NATS since the broker's last heartbeat. */
  readonly silentForMs: number;
}

export interface ReconcilePolicy {
  /** A final or unknown execution must be held in this many heartbeats in a row before it is stopped. */
  readonly strayAfterSightings: number;
  /** An active execution must be missing from this many heartbeats in a row before it is repaired. */
  readonly missingAfterSightings: number;
  /** An executing one must also have been missing for this long (first to last of those heartbeats). */
  readonly instanceLostAfterMs: number;
  /**
   * Heartbeats count as evidence of a missing execution only when received this long after the job's last
   * change, so that a Launch still on its way to the broker is not mistaken for a lost one.
   */
  readonly settleMs: number;
  /** Connected time without a heartbeat after which a broker's executions are failed. */
  readonly brokerLostAfterMs: number;
}

/** A difference between the scheduler's view and a broker's, and the repair it calls for. */
export type Repair =
  /** The broker holds an execution that is final, unknown, or placed on another broker: stop it there. */
  | { readonly kind: 'stop-stray'; readonly brokerId: string; readonly executionId: string; readonly state: JobState | 'unknown' }
  /** Cancelled, yet still held by its broker after the cancel should have reached it: ask again. */
  | { readonly kind: 'stop-cancelled'; readonly brokerId: string; readonly executionId: string }
  /** Claimed for a live broker that does not hold it: its launch never arrived. */
  | { readonly kind: 'relaunch'; readonly brokerId: string; readonly executionId: string }
  /** Executing on a live broker that no longer holds it. */
  | { readonly kind: 'instance-lost'; readonly brokerId: string; readonly executionId: string }
  /** Active on a broker silent for longer than allowed. */
  | { readonly kind: 'broker-lost'; readonly brokerId: string; readonly executionId: string; readonly silentForMs: number };

/**
 * The repairs that make the scheduler's view and the brokers' agree, decided from what each side says
 * (no I/O). `unheardSilentForMs` is the silence of a broker this process never heard from: connected time
 * since it started.
 */
export function decide(brokers: readonly BrokerView[], jobs: readonly JobView[], unheardSilentForMs: number, policy: ReconcilePolicy): Repair[] {
  const repairs: Repair[] = [];
  const jobById = new Map(jobs.map((j) => [j.executionId, j]));
  const brokerById = new Map(brokers.map((b) => [b.brokerId, b]));

  for (const broker of brokers) {
    const recent = broker.sightings.slice(-policy.strayAfterSightings);
    if (recent.length < policy.strayAfterSightings) continue;
    for (const executionId of recent.at(-1)!.executionIds) {
      if (!recent.every((s) => s.executionIds.has(executionId))) continue;
      const job = jobById.get(executionId);
      if (!job) {
        repairs.push({ kind: 'stop-stray', brokerId: broker.brokerId, executionId, state: 'unknown' });
        continue;
      }
      const stray = isFinal(job.state) || (ACTIVE.includes(job.state) && job.brokerId !== broker.brokerId);
      // Held after the job became what it is: not a sighting from before its end.
      if (stray && recent.every((s) => s.receivedAtMs > job.changedAtMs)) {
        repairs.push({ kind: 'stop-stray', brokerId: broker.brokerId, executionId, state: job.state });
      }
    }
  }

  for (const job of jobs) {
    if (!ACTIVE.includes(job.state) || job.brokerId === null) continue;
    const broker = brokerById.get(job.brokerId);
    const silentForMs = broker?.silentForMs ?? unheardSilentForMs;
    if (silentForMs > policy.brokerLostAfterMs) {
      repairs.push({ kind: 'broker-lost', brokerId: job.brokerId, executionId: job.executionId, silentForMs });
      continue;
    }
    if (!broker) continue;
    const settledAtMs = job.changedAtMs + policy.settleMs;
    // A cancel can be lost on its way (the broker or this scheduler restarting as it is sent): while the
    // broker still holds the execution well after the cancel was recorded, it is asked again.
    const latest = broker.sightings.at(-1);
    if (job.cancelRequested && latest && latest.receivedAtMs > settledAtMs && latest.executionIds.has(job.executionId)) {
      repairs.push({ kind: 'stop-cancelled', brokerId: job.brokerId, executionId: job.executionId });
      continue;
    }
    // The heartbeats since the job settled, newest first, up to the newest that holds it.
    const missingIn: Sighting[] = [];
    for (const s of [...broker.sightings].reverse()) {
      if (s.receivedAtMs <= settledAtMs || s.executionIds.has(job.executionId)) break;
      missingIn.push(s);
    }
    if (missingIn.length < policy.missingAfterSightings) continue;
    if (job.state === 'provisioning') {
      repairs.push({ kind: 'relaunch', brokerId: job.brokerId, executionId: job.executionId });
      continue;
    }
    // Failing a running execution cannot be undone: only after a longer absence than a relaunch needs.
    const missingForMs = missingIn[0]!.receivedAtMs - missingIn.at(-1)!.receivedAtMs;
    if (missingForMs >= policy.instanceLostAfterMs) repairs.push({ kind: 'instance-lost', brokerId: job.brokerId, executionId: job.executionId });
  }
  return repairs;
}

/** What the reconciler does to repair; the scheduler wires these to the broker, the dispatcher and the lifecycle. */
export interface ReconcileActions {
  /** Asks a broker to stop and remove an execution's instance (gRPC Cancel). */
  stop(brokerId: string, executionId: string): Promise<void>;
  /** Sends the launch of a provisioning job again (the broker's Launch is idempotent). */
  relaunch(executionId: string): Promise<void>;
  /** True while this process has a launch of the execution in flight or a retry of it waiting. */
  launchPending(executionId: string): boolean;
  /** Applies the end its broker stored on the bus, if there is one; false when there is none. */
  applyStoredExit(executionId: string): Promise<boolean>;
  fail(executionId: string, reason: string): Promise<void>;
}

export interface ReconcilerOptions extends ReconcilePolicy {
  /** The same repair of the same execution is not repeated sooner than this. */
  readonly repeatAfterMs: number;
  /** When this process started: the silence of a broker it never heard is counted from here. */
  readonly startedAtMs: number;
}

/**
 * Periodic reconciliation between the scheduler's jobs and what each broker reports holding in its
 * heartbeats, repairing drift both ways; every repair is logged.
 */
export class Reconciler {
  private readonly repairedAtMs = new Map<string, number>();
  private busy = false;

  constructor(
    private readonly store: JobStore,
    private readonly brokers: BrokerRegistry,
    private readonly clock: ConnectionClock,
    private readonly actions: ReconcileActions,
    private readonly options: ReconcilerOptions,
    private readonly log: Logger,
  ) {}

  /** One pass; a pass still running when the next is due makes the next one a no-op. */
  async tick(nowMs = Date.now()): Promise<Repair[]> {
    // While this process is cut off from NATS it hears no heartbeat: nothing it sees is evidence.
    if (this.busy || !this.clock.connected) return [];
    this.busy = true;
    try {
      const views: BrokerView[] = [...this.brokers.known()].map(([brokerId, b]) => ({
        brokerId,
        sightings: b.sightings,
        silentForMs: this.clock.connectedMsBetween(b.seenAtMs, nowMs),
      }));
      const held = views.flatMap((v) => [...(v.sightings.at(-1)?.executionIds ?? [])]);
      const jobs = await this.store.views(held, nowMs);
      const unheardSilentForMs = this.clock.connectedMsBetween(this.options.startedAtMs, nowMs);
      for (const [key, atMs] of this.repairedAtMs) if (nowMs - atMs >= this.options.repeatAfterMs) this.repairedAtMs.delete(key);
      const repairs = decide(views, jobs, unheardSilentForMs, this.options).filter((r) => {
        const key = `${r.kind}:${r.brokerId}:${r.executionId}`;
        if (this.repairedAtMs.has(key)) return false;
        if (r.kind === 'relaunch' && this.actions.launchPending(r.executionId)) return false;
        this.repairedAtMs.set(key, nowMs);
        return true;
      });
      await Promise.all(repairs.map((r) => this.repair(r).catch((err: unknown) => this.log.warn({ err, ...r }, 'reconcile: repair failed; it is tried again later'))));
      return repairs;
    } finally {
      this.busy = false;
    }
  }

  private async repair(r: Repair): Promise<void> {
    const { executionId, brokerId } = r;
    switch (r.kind) {
      case 'stop-stray':
        this.log.warn({ executionId, broker: brokerId, state: r.state }, `reconcile: broker holds an execution that is ${r.state === 'unknown' ? 'unknown' : r.state}; stopping it there`);
        await this.actions.stop(brokerId, executionId);
        return;
      case 'stop-cancelled':
        this.log.warn({ executionId, broker: brokerId }, 'reconcile: a cancelled execution still runs on its broker; asking it again to stop');
        await this.actions.stop(brokerId, executionId);
        return;
      case 'relaunch':
        if (await this.actions.applyStoredExit(executionId)) {
          this.log.warn({ executionId, broker: brokerId }, 'reconcile: launch had already ended on its broker; applied the end it reported');
          return;
        }
        this.log.warn({ executionId, broker: brokerId }, 'reconcile: broker does not hold a provisioning execution; launching it again');
        await this.actions.relaunch(executionId);
        return;
      case 'instance-lost':
        if (await this.actions.applyStoredExit(executionId)) {
          this.log.warn({ executionId, broker: brokerId }, 'reconcile: instance had ended on its broker; applied the end it reported');
          return;
        }
        this.log.warn({ executionId, broker: brokerId }, 'reconcile: broker no longer holds an executing instance and reported no end; failing it');
        await this.actions.fail(executionId, `broker ${brokerId} no longer holds this execution's container and reported no end for it; run it again`);
        return;
      case 'broker-lost':
        this.log.warn({ executionId, broker: brokerId, silentForMs: r.silentForMs }, 'reconcile: broker lost; failing its execution');
        await this.actions.fail(
          executionId,
          `broker ${brokerId} stopped answering for ${Math.round(this.options.brokerLostAfterMs / 1000)}s; if it comes back, Paddock stops this execution's container there`,
        );
        return;
    }
  }
}
