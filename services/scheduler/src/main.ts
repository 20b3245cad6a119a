import { runService } from '@paddock/service';
import { createLogger, startTelemetry } from '@paddock/telemetry';
import { schedulerConfig } from './config.js';
import { startScheduler } from './scheduler.js';

process.title = 'paddock-scheduler';
const config = schedulerConfig(process.env);
const log = createLogger('scheduler', config.logLevel);
const telemetry = startTelemetry({ service: 'paddock-scheduler', otlpEndpoint: config.otlpEndpoint, metricsPort: config.metricsPort });
runService({
  name: 'scheduler',
  log,
  telemetry,
  start: async (startup) => {
    // A taken port stops the start with a message naming PADDOCK_METRICS_PORT.
    const metricsUrl = await telemetry.metricsListening;
    if (metricsUrl !== null) log.info({ url: metricsUrl }, 'metrics served');
    return startScheduler(config, log, { startup, metrics: telemetry.metrics });
  },
});
