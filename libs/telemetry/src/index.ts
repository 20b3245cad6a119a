export { createLogger, type Logger } from './logger.js';
export { startTelemetry, type Telemetry } from './telemetry.js';
export { tracer, withSpan, injectContext, extractContext, type Carrier } from './trace.js';
