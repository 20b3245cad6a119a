import { createNoopMeter, type Attributes, type Meter, type ObservableResult } from '@opentelemetry/api';

/**
 * Every metric Paddock exports, with its name, unit and attributes written once. Services record through
 * `PaddockMetrics` (below) and never call a Meter themselves, so a name or a label cannot drift between
 * the code that writes it and the dashboards that read it. Names follow OpenTelemetry's semantic
 * conventions (dotted, no unit in the name); the Prometheus exporter turns `paddock.queue.depth` into
 * `paddock_queue_depth` and adds `_total` to counters.
 */
export interface InstrumentSpec {
  readonly name: string;
  readonly kind: 'counter' | 'histogram' | 'observable_gauge';
  readonly unit: string;
  readonly description: string;
  /** The attribute keys a data point of this instrument carries. */
  readonly attributes: readonly string[];
}

/** The states of the execution lifecycle, as the API shows them. */
export type ExecutionStateName =
  | 'queued'
  | 'provisioning'
  | 'executing'
  | 'awaiting_review'
  | 'completed'
  | 'failed'
  | 'cancelled';

export const EXECUTION_STATE_NAMES: readonly ExecutionStateName[] = [
  'queued',
  'provisioning',
  'executing',
  'awaiting_review',
  'completed',
  'failed',
  'cancelled',
];

/** The steps between a request and a running job whose durations are measured on their own. */
export type StartPhase =
  /** From the accepted request to a broker taking it. */
  | 'queued_to_provisioning'
  /** From a broker taking it to its process running. */
  | 'provisioning_to_executing'
  /** Building a missing Paddock image on demand (only when one was built). */
  | 'image_build'
  /** The provider creating and starting the container. */
  | 'container_create'
  /** From the process running to the first byte of its output. */
  | 'first_output';

export const START_PHASES: readonly StartPhase[] = [
  'queued_to_provisioning',
  'provisioning_to_executing',
  'image_build',
  'container_create',
  'first_output',
];

export const instruments = {
  executionTransitions: {
    name: 'paddock.executions.transitions',
    kind: 'counter',
    unit: '{execution}',
    description: 'Executions that entered a state; from_state is "none" for the first state of an execution',
    attributes: ['state', 'from_state'],
  },
  executionsByState: {
    name: 'paddock.executions',
    kind: 'observable_gauge',
    unit: '{execution}',
    description: 'Executions currently in each state',
    attributes: ['state'],
  },
  queueDepth: {
    name: 'paddock.queue.depth',
    kind: 'observable_gauge',
    unit: '{execution}',
    description: 'Executions accepted and not yet placed on a broker',
    attributes: [],
  },
  queueWait: {
    name: 'paddock.queue.wait.duration',
    kind: 'histogram',
    unit: 'ms',
    description: 'Time an execution waited in the queue before it was placed on a broker',
    attributes: [],
  },
  startPhase: {
    name: 'paddock.execution.start.duration',
    kind: 'histogram',
    unit: 'ms',
    description: 'Time each phase of starting an execution took',
    attributes: ['phase'],
  },
  runningContainers: {
    name: 'paddock.broker.containers.running',
    kind: 'observable_gauge',
    unit: '{container}',
    description: 'Containers running on each broker',
    attributes: ['broker'],
  },
  busRedeliveries: {
    name: 'paddock.bus.redeliveries',
    kind: 'counter',
    unit: '{message}',
    description: 'JetStream messages delivered again to a consumer after a missing ack or a nak',
    attributes: ['consumer'],
  },
  busDeadLetters: {
    name: 'paddock.bus.dead_letters',
    kind: 'counter',
    unit: '{message}',
    description: 'Messages a consumer gave up on and sent to the dead-letter subject',
    attributes: ['consumer'],
  },
  errors: {
    name: 'paddock.errors',
    kind: 'counter',
    unit: '{error}',
    description: 'Errors by kind (the error class name): transient ones that were retried and permanent ones',
    attributes: ['kind'],
  },
} as const satisfies Record<string, InstrumentSpec>;

/**
 * Bucket bounds for the millisecond histograms: from a fast exec (a few ms) to an image build or a long
 * queue (tens of minutes). The SDK's default bounds stop at 10 s, which would put every build in +Inf.
 */
export const DURATION_BUCKETS_MS: readonly number[] = [
  1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000,
];

export type Observed<T> = T | Promise<T>;

/** Stops calling an observer's callback; calling it again does nothing. */
export type Unobserve = () => void;

export interface RunningContainers {
  readonly broker: string;
  readonly running: number;
}

/** Paddock's instruments, bound to one meter. Every method is cheap and never throws. */
export interface PaddockMetrics {
  /** An execution entered `to`; `from` is null for the first state it was stored in. */
  executionTransitioned(to: ExecutionStateName, from: ExecutionStateName | null): void;
  /** An execution left the queue for a broker after waiting `waitMs`. */
  queueWaited(waitMs: number): void;
  /** One phase of starting an execution took `durationMs`. */
  startPhaseTook(phase: StartPhase, durationMs: number): void;
  /** `consumer` got a message it had been given before. */
  busRedelivered(consumer: string): void;
  /** `consumer` gave up on a message and sent it to the dead-letter subject. */
  busDeadLettered(consumer: string): void;
  /** An error of `kind` (an error class name, so the set of values stays small) happened. */
  errorOccurred(kind: string): void;
  /**
   * Reports how many executions are in each state, read by `read` at each collection. A state `read`
   * leaves out is reported as 0, so a dashboard sees every state.
   */
  observeExecutionsByState(read: () => Observed<Partial<Record<ExecutionStateName, number>>>): Unobserve;
  /** Reports the number of executions waiting to be placed, read by `read` at each collection. */
  observeQueueDepth(read: () => Observed<number>): Unobserve;
  /** Reports the containers running on each broker, read by `read` at each collection. */
  observeRunningContainers(read: () => Observed<readonly RunningContainers[]>): Unobserve;
}

/**
 * Paddock's instruments on `meter`. An observer whose callback throws or rejects reports nothing for that
 * collection (a gap on the dashboard, not a wrong value) and is asked again at the next one.
 */
export function createPaddockMetrics(meter: Meter): PaddockMetrics {
  const spec = instruments;
  const transitions = meter.createCounter(spec.executionTransitions.name, {
    unit: spec.executionTransitions.unit,
    description: spec.executionTransitions.description,
  });
  const queueWait = meter.createHistogram(spec.queueWait.name, {
    unit: spec.queueWait.unit,
    description: spec.queueWait.description,
    advice: { explicitBucketBoundaries: [...DURATION_BUCKETS_MS] },
  });
  const startPhase = meter.createHistogram(spec.startPhase.name, {
    unit: spec.startPhase.unit,
    description: spec.startPhase.description,
    advice: { explicitBucketBoundaries: [...DURATION_BUCKETS_MS] },
  });
  const redeliveries = meter.createCounter(spec.busRedeliveries.name, {
    unit: spec.busRedeliveries.unit,
    description: spec.busRedeliveries.description,
  });
  const deadLetters = meter.createCounter(spec.busDeadLetters.name, {
    unit: spec.busDeadLetters.unit,
    description: spec.busDeadLetters.description,
  });
  const errors = meter.createCounter(spec.errors.name, { unit: spec.errors.unit, description: spec.errors.description });
  const byState = meter.createObservableGauge(spec.executionsByState.name, {
    unit: spec.executionsByState.unit,
    description: spec.executionsByState.description,
  });
  const queueDepth = meter.createObservableGauge(spec.queueDepth.name, {
    unit: spec.queueDepth.unit,
    description: spec.queueDepth.description,
  });
  const running = meter.createObservableGauge(spec.runningContainers.name, {
    unit: spec.runningContainers.unit,
    description: spec.runningContainers.description,
  });

  function observer<T>(
    gauge: { addCallback(cb: (r: ObservableResult<Attributes>) => Promise<void>): void; removeCallback(cb: (r: ObservableResult<Attributes>) => Promise<void>): void },
    read: () => Observed<T>,
    report: (result: ObservableResult<Attributes>, value: T) => void,
  ): Unobserve {
    const callback = async (result: ObservableResult<Attributes>) => {
      let value: T;
      try {
        value = await read();
      } catch {
        return;
      }
      report(result, value);
    };
    gauge.addCallback(callback);
    return () => gauge.removeCallback(callback);
  }

  return {
    executionTransitioned(to, from) {
      transitions.add(1, { state: to, from_state: from ?? 'none' });
    },
    queueWaited(waitMs) {
      // A wall clock stepped back between two stamps gives a negative duration: not a measurement.
      if (Number.isFinite(waitMs) && waitMs >= 0) queueWait.record(waitMs);
    },
    startPhaseTook(phase, durationMs) {
      if (Number.isFinite(durationMs) && durationMs >= 0) startPhase.record(durationMs, { phase });
    },
    busRedelivered(consumer) {
      redeliveries.add(1, { consumer });
    },
    busDeadLettered(consumer) {
      deadLetters.add(1, { consumer });
    },
    errorOccurred(kind) {
      errors.add(1, { kind });
    },
    observeExecutionsByState(read) {
      return observer(byState, read, (result, counts) => {
        for (const state of EXECUTION_STATE_NAMES) result.observe(counts[state] ?? 0, { state });
      });
    },
    observeQueueDepth(read) {
      return observer(queueDepth, read, (result, depth) => result.observe(depth));
    },
    observeRunningContainers(read) {
      return observer(running, read, (result, list) => {
        for (const { broker, running: count } of list) result.observe(count, { broker });
      });
    },
  };
}

/** Instruments that record nothing: for a component run on its own, without `startTelemetry`. */
export function unrecordedMetrics(): PaddockMetrics {
  return createPaddockMetrics(createNoopMeter());
}
