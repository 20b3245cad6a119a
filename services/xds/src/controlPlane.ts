import type { Logger } from '@paddock/telemetry';
import type { SnapshotCache } from './cache/snapshotCache.js';
import type { EnvoyProtos } from './protos/envoyProtos.js';
import { NODE_GROUPS } from './resource/names.js';
import type { PaddockState } from './resource/paddockState.js';
import { SnapshotBuilder, type SnapshotOptions } from './resource/snapshots.js';
import { PUSH_ORDER, TYPE_LABELS } from './resource/typeUrls.js';

export interface ControlPlaneOptions {
  /** A snapshot is built this long after the last change of a burst... */
  readonly debounceMs: number;
  /** ...but never later than this after its first change. */
  readonly debounceMaxMs: number;
  /**
   * The first snapshot waits this long after start, so that a restarted control plane hears every broker's
   * heartbeat before it serves: clients keep their configuration until then instead of being sent an empty
   * one. 0 serves at once.
   */
  readonly warmupMs: number;
  readonly snapshot: SnapshotOptions;
  readonly log: Logger;
  /** Told of a state that could not become a snapshot (a bug: the previous snapshot stays). */
  readonly onError?: (err: Error) => void;
}

/** Where the state comes from: StateSource, or anything that can say what it is and when it changed. */
export interface StateFeed {
  state(): PaddockState;
  onChange(listener: () => void): () => void;
}

/**
 * Turns state changes into snapshots: debounced (a burst of changes is one version, as Istio's 100 ms),
 * built for every node group, and set in the cache, which pushes them to the streams.
 */
export class ControlPlane {
  #timer: NodeJS.Timeout | undefined;
  #burstStartedMs = 0;
  #unsubscribe: (() => void) | undefined;
  #warm = false;
  #builds = 0;
  readonly #builder: SnapshotBuilder;

  constructor(
    private readonly feed: StateFeed,
    private readonly cache: SnapshotCache,
    protos: EnvoyProtos,
    private readonly options: ControlPlaneOptions,
  ) {
    this.#builder = new SnapshotBuilder(options.snapshot, protos);
  }

  /** How many snapshots were built and set (one per debounced burst). */
  get builds(): number {
    return this.#builds;
  }

  start(): void {
    this.#unsubscribe = this.feed.onChange(() => this.#changed());
    this.#burstStartedMs = Date.now();
    this.#timer = setTimeout(() => {
      this.#warm = true;
      this.#push();
    }, this.options.warmupMs);
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#unsubscribe?.();
  }

  #changed(): void {
    // During the warm-up the first snapshot is already scheduled, and will hold this change.
    if (!this.#warm) return;
    const nowMs = Date.now();
    if (this.#timer === undefined) this.#burstStartedMs = nowMs;
    clearTimeout(this.#timer);
    const dueMs = Math.min(nowMs + this.options.debounceMs, this.#burstStartedMs + this.options.debounceMaxMs);
    this.#timer = setTimeout(() => this.#push(), Math.max(0, dueMs - nowMs));
  }

  #push(): void {
    this.#timer = undefined;
    const startedMs = Date.now();
    const waitedMs = startedMs - this.#burstStartedMs;
    try {
      const state = this.feed.state();
      const snapshots = this.#builder.build(state);
      for (const [group, snapshot] of snapshots) this.cache.setSnapshot(group, snapshot);
      this.#builds += 1;
      const edge = snapshots.get(NODE_GROUPS.edge);
      this.options.log.debug(
        {
          build: this.#builds,
          brokers: state.brokers.size,
          instances: state.instances.size,
          waitedMs,
          buildMs: Date.now() - startedMs,
          versions: edge ? Object.fromEntries(PUSH_ORDER.map((t) => [TYPE_LABELS[t], edge.version(t)])) : {},
        },
        `configuration ${this.#builds} set`,
      );
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      this.options.log.error({ err: error }, `the state could not become a configuration; clients keep the previous one: ${error.message}`);
      this.options.onError?.(error);
    }
  }
}
