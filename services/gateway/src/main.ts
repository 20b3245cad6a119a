import { register as registerXdsResolver } from '@grpc/grpc-js-xds';
import { runService } from '@paddock/service';
import { createLogger, startTelemetry } from '@paddock/telemetry';
import { grpcClientBootstrap } from '@paddock/xds';
import { gatewayConfig } from './config.js';
import { startGateway } from './gateway.js';

process.title = 'paddock-gateway';
const config = gatewayConfig(process.env);
const log = createLogger('gateway', config.logLevel);
if (config.brokerXdsAddress !== undefined) {
  // grpc-js-xds takes its bootstrap from the environment only, once per process, when the first xds:
  // channel resolves: set before any. A GRPC_XDS_BOOTSTRAP file would win over it, and name another plane.
  process.env['GRPC_XDS_BOOTSTRAP_CONFIG'] = grpcClientBootstrap({ serverUri: config.brokerXdsAddress, nodeId: `gateway-${process.pid}` });
  delete process.env['GRPC_XDS_BOOTSTRAP'];
  registerXdsResolver();
  log.info({ xds: config.brokerXdsAddress }, 'brokers are dialled through the control plane');
}
// No listener of its own: the gateway serves /metrics on its API port, to the admin.
const telemetry = startTelemetry({ service: 'paddock-gateway', otlpEndpoint: config.otlpEndpoint });
runService({ name: 'gateway', log, telemetry, start: (startup) => startGateway(config, log, { startup, telemetry }) });
