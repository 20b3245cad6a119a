import { createLogger, startTelemetry } from '@paddock/telemetry';
import { brokerConfig } from './config.js';
import { startBroker } from './broker.js';
import { runService } from '@paddock/service';

process.title = 'paddock-broker';
const config = brokerConfig(process.env);
const log = createLogger('broker', config.logLevel);
const telemetry = startTelemetry({ service: 'paddock-broker', otlpEndpoint: config.otlpEndpoint, metricsPort: config.metricsPort });
runService({
  name: 'broker',
  log,
  telemetry,
  start: async (startup) => {
    // A taken port stops the start with a message naming PADDOCK_METRICS_PORT.
    const metricsUrl = await telemetry.metricsListening;
    if (metricsUrl !== null) log.info({ url: metricsUrl }, 'metrics served');
    return startBroker(config, log, { startup, metrics: telemetry.metrics });
  },
});
