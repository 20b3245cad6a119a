import { register as registerXdsResolver } from '@grpc/grpc-js-xds';
import { runService } from '@paddock/service';
import { createLogger, startTelemetry } from '@paddock/telemetry';
import { grpcClientBootstrap } from '@paddock/xds';
import { schedulerConfig } from './config.js';
import { startScheduler } from './scheduler.js';

process.title = 'paddock-scheduler';
const config = schedulerConfig(process.env);
const log = createLogger('scheduler', config.logLevel);
if (config.xdsAddress !== undefined) {
  // grpc-js-xds takes its bootstrap from the environment only, once per process, when the first xds:
  // channel resolves: set before any. A GRPC_XDS_BOOTSTRAP file would win over it, and name another plane.
  process.env['GRPC_XDS_BOOTSTRAP_CONFIG'] = grpcClientBootstrap({ serverUri: config.xdsAddress, nodeId: `scheduler-${process.pid}` });
  delete process.env['GRPC_XDS_BOOTSTRAP'];
  registerXdsResolver();
  log.info({ xds: config.xdsAddress }, 'brokers are dialled through the control plane');
}
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
