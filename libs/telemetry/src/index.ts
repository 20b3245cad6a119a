export { createLogger, type Logger } from './logger.js';
export { startTelemetry, type Telemetry, type TelemetryOptions } from './telemetry.js';
export { tracer, withSpan, injectContext, extractContext, type Carrier } from './trace.js';
export {
  instruments,
  createPaddockMetrics,
  unrecordedMetrics,
  EXECUTION_STATE_NAMES,
  START_PHASES,
  DURATION_BUCKETS_MS,
  type InstrumentSpec,
  type PaddockMetrics,
  type ExecutionStateName,
  type StartPhase,
  type RunningContainers,
  type Observed,
  type Unobserve,
} from './instruments.js';
export { PROMETHEUS_CONTENT_TYPE, MetricsListenError } from './metrics.js';
