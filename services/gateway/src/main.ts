import { runService } from '@paddock/service';
import { createLogger, startTelemetry } from '@paddock/telemetry';
import { gatewayConfig } from './config.js';
import { startGateway } from './gateway.js';

process.title = 'paddock-gateway';
const config = gatewayConfig(process.env);
const log = createLogger('gateway', config.logLevel);
// No listener of its own: the gateway serves /metrics on its API port, to the admin.
const telemetry = startTelemetry({ service: 'paddock-gateway', otlpEndpoint: config.otlpEndpoint });
runService({ name: 'gateway', log, telemetry, start: (startup) => startGateway(config, log, { startup, telemetry }) });
