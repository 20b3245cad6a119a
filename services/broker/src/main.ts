import { createLogger, startTelemetry } from '@paddock/telemetry';
import { brokerConfig } from './config.js';
import { startBroker } from './broker.js';
import { runService } from '@paddock/service';

process.title = 'paddock-broker';
const config = brokerConfig(process.env);
const log = createLogger('broker', config.logLevel);
const telemetry = startTelemetry({ service: 'paddock-broker', otlpEndpoint: config.otlpEndpoint });
runService({ name: 'broker', log, telemetry, start: () => startBroker(config, log) });
