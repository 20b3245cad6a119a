import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { LlmKey } from '@paddock/secrets';
import { runService } from '@paddock/service';
import { createLogger, startTelemetry } from '@paddock/telemetry';
import { startBilling } from './billing.js';
import { billingConfig } from './config.js';
import { startMeteringProxy } from './proxy/meteringProxy.js';

process.title = 'paddock-billing';
const config = billingConfig(process.env);
const log = createLogger('billing', config.logLevel);
const telemetry = startTelemetry({ service: 'paddock-billing', otlpEndpoint: config.otlpEndpoint, metricsPort: config.metricsPort });
runService({
  name: 'billing',
  log,
  telemetry,
  start: async (startup) => {
    // A taken port stops the start with a message naming PADDOCK_METRICS_PORT.
    const metricsUrl = await telemetry.metricsListening;
    if (metricsUrl !== null) log.info({ url: metricsUrl }, 'metrics served');
    // Before waiting for anything: without the gateway's LLM key no sealed provider key can be opened.
    const llmKey = await LlmKey.existing(config.llmProxy.keyFile);
    const billing = await startBilling(config, log, { startup, metrics: telemetry.metrics });
    try {
      await mkdir(dirname(config.llmProxy.socketPath), { recursive: true, mode: 0o700 });
      const proxy = await startMeteringProxy({ socketPath: config.llmProxy.socketPath, upstreams: config.llmProxy.upstreams, llmKey, ...billing.ports, log });
      log.info({ socket: config.llmProxy.socketPath }, 'LLM metering proxy ready');
      let stopped: Promise<void> | undefined;
      return {
        // The proxy first: no call is metered after the ledger's bus is gone.
        stop: () =>
          (stopped ??= (async () => {
            await proxy.close();
            await billing.stop();
          })()),
      };
    } catch (err) {
      await billing.stop();
      throw err;
    }
  },
});
