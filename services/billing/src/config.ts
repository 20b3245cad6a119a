import { isIP } from 'node:net';
import { join } from 'node:path';
import { busSettingsFromEnv, type BusSettings } from '@paddock/bus';
import { commonConfig, EnvReader, type CommonConfig, type Env } from '@paddock/config';
import { ConfigError } from '@paddock/errors';
import { llmKeyFile, tlsFilesFromEnv, type TlsFiles } from '@paddock/plane';
import type { WebhookSettings } from './budgets/webhooks.js';
import { DEFAULT_PRICES_FILE } from './prices/priceStore.js';
import { parseUpstreams, type Upstreams } from './proxy/upstreams.js';

/** The providers' own APIs: where the metering proxy sends calls unless told otherwise. */
export const DEFAULT_LLM_UPSTREAMS = 'openai=https://api.openai.com,anthropic=https://api.anthropic.com,gemini=https://generativelanguage.googleapis.com';

export interface BillingConfig extends CommonConfig {
  /** Where the gRPC API listens: loopback unless the plane's mTLS is meant to be reached from elsewhere. */
  readonly grpcHost: string;
  readonly grpcPort: number;
  /** Billing's certificate and key, and the plane's CA its callers' certificates must come from. */
  readonly tls: TlsFiles;
  /** What version 1 of the prices is made from, when the database holds none. */
  readonly defaultPricesFile: string;
  /** Usage messages handled at once per durable: how large a ledger batch can grow. */
  readonly ingestConcurrency: number;
  /** Usage events written in one transaction at most. */
  readonly ingestBatchMax: number;
  readonly webhooks: WebhookSettings;
  readonly llmProxy: {
    /** The unix socket the metering proxy listens on; the broker's relay offers it inside instances. */
    readonly socketPath: string;
    readonly upstreams: Upstreams;
    /** The key the gateway seals executions' provider keys with (plane/llm-key), which must exist. */
    readonly keyFile: string;
  };
  readonly metricsPort: number;
  readonly bus: BusSettings;
}

export function billingConfig(env: Env): BillingConfig {
  const read = new EnvReader(env);
  const common = commonConfig(env);
  const grpcHost = read.string('PADDOCK_BILLING_HOST', '127.0.0.1');
  if (isIP(grpcHost) === 0) throw new ConfigError('PADDOCK_BILLING_HOST', `expected an IP address to bind (e.g. 127.0.0.1 or 0.0.0.0), got "${grpcHost}"`);
  const initialDelayMs = read.int('PADDOCK_BILLING_WEBHOOK_RETRY_MS', 1_000, { min: 10, max: 3_600_000 });
  const maxDelayMs = read.int('PADDOCK_BILLING_WEBHOOK_MAX_RETRY_MS', 3_600_000, { min: 10, max: 86_400_000 });
  if (maxDelayMs < initialDelayMs) {
    throw new ConfigError('PADDOCK_BILLING_WEBHOOK_MAX_RETRY_MS', `${maxDelayMs} ms is shorter than PADDOCK_BILLING_WEBHOOK_RETRY_MS (${initialDelayMs} ms)`);
  }
  return Object.freeze({
    ...common,
    grpcHost,
    grpcPort: read.int('PADDOCK_BILLING_PORT', 7074, { min: 0, max: 65_535 }),
    tls: tlsFilesFromEnv(env, 'billing'),
    defaultPricesFile: read.string('PADDOCK_BILLING_DEFAULT_PRICES', DEFAULT_PRICES_FILE),
    ingestConcurrency: read.int('PADDOCK_BILLING_INGEST_CONCURRENCY', 256, { min: 1, max: 5_000 }),
    ingestBatchMax: read.int('PADDOCK_BILLING_BATCH_MAX', 500, { min: 1, max: 10_000 }),
    webhooks: Object.freeze({
      timeoutMs: read.int('PADDOCK_BILLING_WEBHOOK_TIMEOUT_MS', 10_000, { min: 100, max: 120_000 }),
      maxAttempts: read.int('PADDOCK_BILLING_WEBHOOK_ATTEMPTS', 15, { min: 1, max: 100 }),
      initialDelayMs,
      maxDelayMs,
    }),
    llmProxy: Object.freeze({
      socketPath: read.string('PADDOCK_LLM_PROXY_SOCKET', join(common.home, 'run', 'llm-proxy.sock')),
      upstreams: parseUpstreams('PADDOCK_LLM_UPSTREAMS', read.string('PADDOCK_LLM_UPSTREAMS', DEFAULT_LLM_UPSTREAMS)),
      keyFile: read.string('PADDOCK_LLM_KEY_FILE', llmKeyFile(common.home)),
    }),
    metricsPort: read.int('PADDOCK_METRICS_PORT', 0, { min: 0, max: 65_535 }),
    bus: busSettingsFromEnv(env),
  });
}
