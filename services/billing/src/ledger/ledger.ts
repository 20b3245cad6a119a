import { inTransaction, type Pool, type Queryable } from '@paddock/db';
import type { BudgetExceeded, ComputeUsage, LlmUsage } from '@paddock/proto';
import { evaluateBudgets, type TouchedScopes } from '../budgets/budgetEvaluator.js';
import { lockExecutions } from '../db.js';
import type { PriceBook } from '../prices/priceBook.js';
import { normalizeModel } from '../prices/priceList.js';
import type { PriceStore } from '../prices/priceStore.js';
import type { UsageEvent } from './usageEvents.js';

const HOUR_MS = 60 * 60 * 1000;

/** One ledger row, as stored in `usage`. */
interface LedgerRow {
  readonly eventId: string;
  readonly executionId: string;
  readonly kind: 'llm' | 'compute';
  readonly atMs: number;
  readonly provider: string;
  readonly model: string;
  readonly api: string;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cacheReadTokens: number;
  readonly cacheWriteTokens: number;
  readonly cpuMs: number;
  readonly memoryMibMs: number;
  readonly wallMs: number;
  readonly costMicros: number;
  readonly unpriced: boolean;
}

interface Totals {
  readonly seq: number;
  readonly cpuMs: number;
  readonly memoryMibMs: number;
  readonly wallMs: number;
  readonly atMs: number;
}

export interface IngestResult {
  /** Rows added to the ledger: events seen before, and stale compute events, add none. */
  readonly stored: number;
  /** Budget alerts the batch caused, committed with it and still to be published. */
  readonly alerts: readonly BudgetExceeded[];
}

/** The compute event's id in the ledger: the message id the broker publishes it with. */
export function computeEventId(usage: Pick<ComputeUsage, 'executionId' | 'seq'>): string {
  return `${usage.executionId}.compute.${usage.seq}`;
}

/**
 * The ledger's one writer. A batch of usage events is stored in one transaction: LLM events priced with the
 * price version in force, compute events turned into what was used since the execution's last ingested
 * totals, the hourly rollup kept in step, and the budgets of the touched projects and teams evaluated, so
 * that an alert is committed with the spending that caused it.
 *
 * Idempotent: an LLM event's id is the ledger's key, and a compute event with a sequence number at or
 * below the last one ingested for its execution (a repeat, or one that arrived after a later one) changes
 * nothing. Totals never go back: each dimension keeps its highest value, so no delta is negative.
 */
export class Ledger {
  constructor(
    private readonly pool: Pool,
    private readonly prices: PriceStore,
    private readonly now: () => number = Date.now,
  ) {}

  async ingest(events: readonly UsageEvent[]): Promise<IngestResult> {
    if (events.length === 0) return { stored: 0, alerts: [] };
    return inTransaction(this.pool, async (client) => {
      const nowMs = this.now();
      await lockExecutions(client, events.map((e) => e.usage.executionId));
      const book = await this.prices.current(client);
      const rows: LedgerRow[] = [];
      const seen = new Set<string>();
      for (const e of events) {
        if (e.kind !== 'llm' || seen.has(e.usage.eventId)) continue;
        seen.add(e.usage.eventId);
        rows.push(llmRow(e.usage, book, nowMs));
      }
      rows.push(...(await computeRows(client, events.flatMap((e) => (e.kind === 'compute' ? [e.usage] : [])), book, nowMs)));
      if (rows.length === 0) return { stored: 0, alerts: [] };
      const stored = await insertRows(client, rows, book.version, nowMs);
      if (stored.length === 0) return { stored: 0, alerts: [] };
      await addToHours(client, stored);
      const scopes = await addToScopes(client, stored);
      return { stored: stored.length, alerts: await evaluateBudgets(client, scopes, nowMs) };
    });
  }
}

function llmRow(usage: LlmUsage, book: PriceBook, nowMs: number): LedgerRow {
  const provider = usage.provider.toLowerCase();
  const model = normalizeModel(usage.model);
  const { costMicros, unpriced } = book.llmCost(provider, model, usage);
  return {
    eventId: usage.eventId,
    executionId: usage.executionId,
    kind: 'llm',
    atMs: usage.atMs === 0 ? nowMs : usage.atMs,
    provider,
    model,
    api: usage.api,
    inputTokens: usage.inputTokens,
    outputTokens: usage.outputTokens,
    cacheReadTokens: usage.cacheReadTokens,
    cacheWriteTokens: usage.cacheWriteTokens,
    cpuMs: 0,
    memoryMibMs: 0,
    wallMs: 0,
    costMicros,
    unpriced,
  };
}

/**
 * Each compute event against its execution's last ingested totals, whose rows are locked so that replicas
 * ingesting the same execution take turns. The cost of a row is the cost of the new totals less the cost of
 * the previous ones at the same prices, so an execution's rows add up to its totals' cost exactly.
 */
async function computeRows(client: Queryable, events: readonly ComputeUsage[], book: PriceBook, nowMs: number): Promise<LedgerRow[]> {
  if (events.length === 0) return [];
  const ids = [...new Set(events.map((e) => e.executionId))].sort();
  await client.query(
    `INSERT INTO compute_totals (execution_id, seq, cpu_ms_total, memory_mib_ms_total, wall_ms_total, at_ms)
     SELECT id, 0, 0, 0, 0, 0 FROM unnest($1::text[]) AS id ORDER BY id ON CONFLICT DO NOTHING`,
    [ids],
  );
  const locked = await client.query<Totals & { executionId: string }>(
    `SELECT execution_id AS "executionId", seq, cpu_ms_total AS "cpuMs", memory_mib_ms_total AS "memoryMibMs", wall_ms_total AS "wallMs", at_ms AS "atMs"
       FROM compute_totals WHERE execution_id = ANY($1::text[]) ORDER BY execution_id FOR UPDATE`,
    [ids],
  );
  const totals = new Map<string, Totals>(locked.rows.map((r) => [r.executionId, r]));
  const changed = new Set<string>();
  const rows: LedgerRow[] = [];
  for (const e of [...events].sort((a, b) => (a.executionId === b.executionId ? a.seq - b.seq : a.executionId < b.executionId ? -1 : 1))) {
    const before = totals.get(e.executionId);
    if (!before || e.seq <= before.seq) continue;
    const after: Totals = {
      seq: e.seq,
      cpuMs: Math.max(before.cpuMs, e.cpuMsTotal),
      memoryMibMs: Math.max(before.memoryMibMs, e.memoryMibMsTotal),
      wallMs: Math.max(before.wallMs, e.wallMsTotal),
      atMs: e.atMs === 0 ? nowMs : e.atMs,
    };
    totals.set(e.executionId, after);
    changed.add(e.executionId);
    const cpuMs = after.cpuMs - before.cpuMs;
    const memoryMibMs = after.memoryMibMs - before.memoryMibMs;
    const wallMs = after.wallMs - before.wallMs;
    if (cpuMs === 0 && memoryMibMs === 0 && wallMs === 0) continue;
    rows.push({
      eventId: computeEventId(e),
      executionId: e.executionId,
      kind: 'compute',
      atMs: after.atMs,
      provider: '',
      model: '',
      api: '',
      inputTokens: 0,
      outputTokens: 0,
      cacheReadTokens: 0,
      cacheWriteTokens: 0,
      cpuMs,
      memoryMibMs,
      wallMs,
      costMicros: book.computeCostMicros(after.cpuMs, after.memoryMibMs) - book.computeCostMicros(before.cpuMs, before.memoryMibMs),
      unpriced: false,
    });
  }
  if (changed.size > 0) {
    const updated = [...changed].map((id) => [id, totals.get(id)!] as const);
    await client.query(
      `UPDATE compute_totals t SET seq = u.seq, cpu_ms_total = u.cpu, memory_mib_ms_total = u.mem, wall_ms_total = u.wall, at_ms = u.at
         FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[]) AS u(id, seq, cpu, mem, wall, at)
        WHERE t.execution_id = u.id`,
      [
        updated.map(([id]) => id),
        updated.map(([, t]) => t.seq),
        updated.map(([, t]) => t.cpuMs),
        updated.map(([, t]) => t.memoryMibMs),
        updated.map(([, t]) => t.wallMs),
        updated.map(([, t]) => t.atMs),
      ],
    );
  }
  return rows;
}

/** Inserts the rows the ledger does not hold yet; returns those. */
async function insertRows(client: Queryable, rows: readonly LedgerRow[], priceVersion: number, nowMs: number): Promise<LedgerRow[]> {
  const col = <K extends keyof LedgerRow>(k: K): LedgerRow[K][] => rows.map((r) => r[k]);
  const inserted = await client.query<{ eventId: string }>(
    `INSERT INTO usage (event_id, execution_id, kind, at_ms, provider, model, api, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                        cpu_ms, memory_mib_ms, wall_ms, cost_micros, unpriced, price_version, ingested_at_ms)
     SELECT *, $17::int, $18::bigint FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bigint[],
                                  $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bool[])
     ON CONFLICT (event_id) DO NOTHING RETURNING event_id AS "eventId"`,
    [
      col('eventId'),
      col('executionId'),
      col('kind'),
      col('atMs'),
      col('provider'),
      col('model'),
      col('api'),
      col('inputTokens'),
      col('outputTokens'),
      col('cacheReadTokens'),
      col('cacheWriteTokens'),
      col('cpuMs'),
      col('memoryMibMs'),
      col('wallMs'),
      col('costMicros'),
      col('unpriced'),
      priceVersion,
      nowMs,
    ],
  );
  if (inserted.rows.length === rows.length) return [...rows];
  const ids = new Set(inserted.rows.map((r) => r.eventId));
  return rows.filter((r) => ids.has(r.eventId));
}

interface HourSum {
  executionId: string;
  hourMs: number;
  kind: string;
  provider: string;
  model: string;
  unpriced: boolean;
  events: number;
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  cpuMs: number;
  memoryMibMs: number;
  wallMs: number;
  costMicros: number;
}

/**
 * Adds the new rows to the hourly rollup: summed here first (one statement may not update a row twice),
 * then upserted in key order, so that concurrent batches lock shared rows in the same order.
 */
async function addToHours(client: Queryable, rows: readonly LedgerRow[]): Promise<void> {
  const sums = new Map<string, HourSum>();
  for (const r of rows) {
    const hourMs = Math.floor(r.atMs / HOUR_MS) * HOUR_MS;
    const key = [r.executionId, String(hourMs).padStart(16, '0'), r.kind, r.provider, r.model, r.unpriced ? '1' : '0'].join('\u0000');
    const sum = sums.get(key);
    if (!sum) {
      sums.set(key, { executionId: r.executionId, hourMs, kind: r.kind, provider: r.provider, model: r.model, unpriced: r.unpriced, events: 1, inputTokens: r.inputTokens, outputTokens: r.outputTokens, cacheReadTokens: r.cacheReadTokens, cacheWriteTokens: r.cacheWriteTokens, cpuMs: r.cpuMs, memoryMibMs: r.memoryMibMs, wallMs: r.wallMs, costMicros: r.costMicros });
      continue;
    }
    sum.events++;
    sum.inputTokens += r.inputTokens;
    sum.outputTokens += r.outputTokens;
    sum.cacheReadTokens += r.cacheReadTokens;
    sum.cacheWriteTokens += r.cacheWriteTokens;
    sum.cpuMs += r.cpuMs;
    sum.memoryMibMs += r.memoryMibMs;
    sum.wallMs += r.wallMs;
    sum.costMicros += r.costMicros;
  }
  const ordered = [...sums.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, s]) => s);
  const col = <K extends keyof HourSum>(k: K): HourSum[K][] => ordered.map((s) => s[k]);
  await client.query(
    `INSERT INTO usage_hours AS h (execution_id, hour_ms, kind, provider, model, unpriced, events, input_tokens, output_tokens, cache_read_tokens,
                                   cache_write_tokens, cpu_ms, memory_mib_ms, wall_ms, cost_micros)
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[],
                          $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[])
     ON CONFLICT (execution_id, hour_ms, kind, provider, model, unpriced) DO UPDATE SET
       events = h.events + excluded.events,
       input_tokens = h.input_tokens + excluded.input_tokens,
       output_tokens = h.output_tokens + excluded.output_tokens,
       cache_read_tokens = h.cache_read_tokens + excluded.cache_read_tokens,
       cache_write_tokens = h.cache_write_tokens + excluded.cache_write_tokens,
       cpu_ms = h.cpu_ms + excluded.cpu_ms,
       memory_mib_ms = h.memory_mib_ms + excluded.memory_mib_ms,
       wall_ms = h.wall_ms + excluded.wall_ms,
       cost_micros = h.cost_micros + excluded.cost_micros`,
    [
      col('executionId'),
      col('hourMs'),
      col('kind'),
      col('provider'),
      col('model'),
      col('unpriced'),
      col('events'),
      col('inputTokens'),
      col('outputTokens'),
      col('cacheReadTokens'),
      col('cacheWriteTokens'),
      col('cpuMs'),
      col('memoryMibMs'),
      col('wallMs'),
      col('costMicros'),
    ],
  );
}

/**
 * Adds the new rows of executions whose account is there to their project's and team's spending per hour
 * (the rows of the others are added when their account comes), and returns those projects and teams.
 */
async function addToScopes(client: Queryable, rows: readonly LedgerRow[]): Promise<TouchedScopes> {
  const accounts = await client.query<{ executionId: string; projectId: string; teamId: string }>(
    'SELECT execution_id AS "executionId", project_id AS "projectId", team_id AS "teamId" FROM accounts WHERE execution_id = ANY($1::text[])',
    [[...new Set(rows.map((r) => r.executionId))]],
  );
  const owners = new Map(accounts.rows.map((a) => [a.executionId, a]));
  const sums = new Map<string, { scope: string; scopeId: string; hourMs: number; costMicros: number }>();
  for (const r of rows) {
    const owner = owners.get(r.executionId);
    if (!owner) continue;
    const hourMs = Math.floor(r.atMs / HOUR_MS) * HOUR_MS;
    for (const [scope, scopeId] of [['project', owner.projectId], ['team', owner.teamId]] as const) {
      if (scopeId === '') continue;
      const key = `${scope}\u0000${scopeId}\u0000${String(hourMs).padStart(16, '0')}`;
      const sum = sums.get(key);
      if (sum) sum.costMicros += r.costMicros;
      else sums.set(key, { scope, scopeId, hourMs, costMicros: r.costMicros });
    }
  }
  if (sums.size > 0) {
    const ordered = [...sums.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
    await client.query(
      `INSERT INTO scope_hours AS s (scope, scope_id, hour_ms, cost_micros)
       SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
       ON CONFLICT (scope, scope_id, hour_ms) DO UPDATE SET cost_micros = s.cost_micros + excluded.cost_micros`,
      [ordered.map((v) => v.scope), ordered.map((v) => v.scopeId), ordered.map((v) => v.hourMs), ordered.map((v) => v.costMicros)],
    );
  }
  return {
    projectIds: [...new Set(accounts.rows.map((a) => a.projectId))],
    teamIds: [...new Set(accounts.rows.map((a) => a.teamId))],
  };
}
