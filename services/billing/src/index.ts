export { startBilling, MIGRATIONS_DIR, type BillingOptions, type MeteringPorts, type StartedBilling } from './billing.js';
export type { BillingConfig } from './config.js';
export type { WebhookSettings } from './budgets/webhooks.js';
export { webhookSignature } from './budgets/webhooks.js';
export { Ledger, computeEventId, type IngestResult } from './ledger/ledger.js';
export type { UsageEvent } from './ledger/usageEvents.js';
export { PriceStore, DEFAULT_PRICES_FILE } from './prices/priceStore.js';
export { CostQueries } from './costs/costQueries.js';
export {
  startMeteringProxy,
  ProxySocketError,
  MAX_REQUEST_BYTES,
  type StartedMeteringProxy,
  type MeteringProxyOptions,
  type RunAccount,
  type RunDirectory,
  type BudgetGate,
  type UsageSink,
} from './proxy/meteringProxy.js';
export { parseUpstreams, type Upstreams } from './proxy/upstreams.js';
