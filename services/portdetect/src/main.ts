import { runService } from '@paddock/service';
import { createLogger, startTelemetry } from '@paddock/telemetry';
import { portdetectConfig } from './config.js';
import { startPortdetect } from './portdetect.js';

process.title = 'paddock-portdetect';
const config = portdetectConfig(process.env);
const log = createLogger('portdetect', config.logLevel);
const telemetry = startTelemetry({ service: 'paddock-portdetect', otlpEndpoint: config.otlpEndpoint, metricsPort: config.metricsPort });
runService({
  name: 'portdetect',
  log,
  telemetry,
  start: async (startup) => {
    const metricsUrl = await telemetry.metricsListening;
    if (metricsUrl !== null) log.info({ url: metricsUrl }, 'metrics served');
    return startPortdetect(config, log, { startup, observer: telemetry.metrics });
  },
});
