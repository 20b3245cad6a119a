import { runService } from '@paddock/service';
import { createLogger, startTelemetry } from '@paddock/telemetry';
import { schedulerConfig } from './config.js';
import { startScheduler } from './scheduler.js';

process.title = 'paddock-scheduler';
const config = schedulerConfig(process.env);
const log = createLogger('scheduler', config.logLevel);
const telemetry = startTelemetry({ service: 'paddock-scheduler', otlpEndpoint: config.otlpEndpoint });
runService({ name: 'scheduler', log, telemetry, start: (startup) => startScheduler(config, log, startup) });
