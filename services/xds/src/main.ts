import { runService } from '@paddock/service';
import { createLogger, startTelemetry } from '@paddock/telemetry';
import { xdsConfig } from './config.js';
import { startXds } from './xds.js';

process.title = 'paddock-xds';
const config = xdsConfig(process.env);
const log = createLogger('xds', config.logLevel);
const telemetry = startTelemetry({ service: 'paddock-xds', otlpEndpoint: config.otlpEndpoint, metricsPort: config.metricsPort });
runService({
  name: 'xds',
  log,
  telemetry,
  start: async (startup) => {
    // A taken port stops the start with a message naming PADDOCK_METRICS_PORT.
    const metricsUrl = await telemetry.metricsListening;
    if (metricsUrl !== null) log.info({ url: metricsUrl }, 'metrics served');
    return startXds(config, log, { startup, metrics: telemetry.metrics });
  },
});
