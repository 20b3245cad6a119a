import type { Pool } from '@paddock/db';
import { ValidationError } from '@paddock/errors';
import { CostGroup, type CostQuery, type CostReport, type CostRow, type ExecutionCostReply, type ModelCost } from '@paddock/proto';

const HOUR_MS = 60 * 60 * 1000;
const NO_END_MS = Number.MAX_SAFE_INTEGER;
const DEFAULT_LIMIT = 1000;
const MAX_LIMIT = 10_000;

/** The SQL for each grouping, over `p` (the usage) left-joined to `a` (the accounts). */
const GROUP_KEYS: Readonly<Record<Exclude<CostGroup, CostGroup.COST_GROUP_UNSPECIFIED | CostGroup.UNRECOGNIZED>, string>> = {
  [CostGroup.COST_GROUP_EXECUTION]: 'p.execution_id',
  [CostGroup.COST_GROUP_WORKFLOW]: "coalesce(a.workflow_id, '')",
  [CostGroup.COST_GROUP_PROJECT]: "coalesce(a.project_id, '')",
  [CostGroup.COST_GROUP_TEAM]: "coalesce(a.team_id, '')",
  [CostGroup.COST_GROUP_USER]: "coalesce(a.owner_id, '')",
  [CostGroup.COST_GROUP_MODEL]: "CASE WHEN p.kind = 'compute' THEN 'compute' ELSE p.provider || '/' || p.model END",
};

/** The figures of one group, as SQL sums them. */
const FIGURES = `
  coalesce(sum(p.cost_micros), 0)::bigint AS "costMicros",
  coalesce(sum(p.cost_micros) FILTER (WHERE p.kind = 'llm'), 0)::bigint AS "llmCostMicros",
  coalesce(sum(p.cost_micros) FILTER (WHERE p.kind = 'compute'), 0)::bigint AS "computeCostMicros",
  coalesce(sum(p.input_tokens), 0)::bigint AS "inputTokens",
  coalesce(sum(p.output_tokens), 0)::bigint AS "outputTokens",
  coalesce(sum(p.cache_read_tokens), 0)::bigint AS "cacheReadTokens",
  coalesce(sum(p.cache_write_tokens), 0)::bigint AS "cacheWriteTokens",
  coalesce(sum(p.cpu_ms), 0)::bigint AS "cpuMs",
  coalesce(sum(p.memory_mib_ms), 0)::bigint AS "memoryMibMs",
  coalesce(sum(p.wall_ms), 0)::bigint AS "wallMs",
  coalesce(array_agg(DISTINCT p.provider || '/' || p.model ORDER BY p.provider || '/' || p.model) FILTER (WHERE p.unpriced), '{}') AS "unpricedModels",
  count(DISTINCT p.execution_id)::int AS executions,
  coalesce(sum(p.events) FILTER (WHERE p.kind = 'llm'), 0)::bigint AS "llmCalls"`;

/**
 * Where a range [fromMs, toMs) is read from: its whole hours from the rollup, the partial hours at either
 * end from the ledger. Without a whole hour inside, all of it comes from the ledger.
 */
function splitRange(fromMs: number, toMs: number): { hours: [number, number]; ledger: [[number, number], [number, number]] } {
  const firstHour = Math.ceil(fromMs / HOUR_MS) * HOUR_MS;
  const lastHour = Math.floor(toMs / HOUR_MS) * HOUR_MS;
  if (firstHour >= lastHour) return { hours: [0, 0], ledger: [[fromMs, toMs], [toMs, toMs]] };
  return { hours: [firstHour, lastHour], ledger: [[fromMs, firstHour], [lastHour, toMs]] };
}

const EMPTY_ROW: CostRow = {
  key: '',
  costMicros: 0,
  llmCostMicros: 0,
  computeCostMicros: 0,
  inputTokens: 0,
  outputTokens: 0,
  cacheReadTokens: 0,
  cacheWriteTokens: 0,
  cpuMs: 0,
  memoryMibMs: 0,
  wallMs: 0,
  unpricedModels: [],
  executions: 0,
  llmCalls: 0,
};

/** Rollups of the ledger: costs by group over a time range, and one execution's cost so far. */
export class CostQueries {
  constructor(private readonly pool: Pool) {}

  async query(q: CostQuery, currency: string): Promise<CostReport> {
    const keyExpr = GROUP_KEYS[q.groupBy as keyof typeof GROUP_KEYS];
    if (keyExpr === undefined) throw new ValidationError('group_by must be one of execution, workflow, project, team, user, model');
    const fromMs = q.fromMs;
    const toMs = q.toMs === 0 ? NO_END_MS : q.toMs;
    if (toMs <= fromMs) throw new ValidationError(`the range is empty: from ${fromMs} is not before to ${toMs}`);
    const limit = q.limit === 0 ? DEFAULT_LIMIT : Math.min(q.limit, MAX_LIMIT);
    const all = q.scope?.all ?? false;
    const projectIds = q.scope?.projectIds ?? [];
    const report: CostReport = { rows: [], totals: { ...EMPTY_ROW }, fromMs, toMs: q.toMs, truncated: false, currency };
    if (!all && projectIds.length === 0) return report;
    const { hours, ledger } = splitRange(fromMs, toMs);
    // GROUPING SETS adds the totals row (key NULL, grouped = 1) over every group, sorted first.
    const r = await this.pool.query<CostRow & { grouped: number }>(
      `WITH p AS (
         SELECT execution_id, kind, provider, model, unpriced, events, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                cpu_ms, memory_mib_ms, wall_ms, cost_micros
           FROM usage_hours WHERE hour_ms >= $1 AND hour_ms < $2
         UNION ALL
         SELECT execution_id, kind, provider, model, unpriced, 1, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                cpu_ms, memory_mib_ms, wall_ms, cost_micros
           FROM usage WHERE (at_ms >= $3 AND at_ms < $4) OR (at_ms >= $5 AND at_ms < $6)
       )
       SELECT ${keyExpr} AS key, GROUPING(${keyExpr}) AS grouped, ${FIGURES}
         FROM p LEFT JOIN accounts a ON a.execution_id = p.execution_id
        WHERE ($7 OR a.project_id = ANY($8::text[])) AND (cardinality($9::text[]) = 0 OR a.team_id = ANY($9::text[]))
        GROUP BY GROUPING SETS ((${keyExpr}), ())
        ORDER BY grouped DESC, "costMicros" DESC, key
        LIMIT $10`,
      [hours[0], hours[1], ledger[0][0], ledger[0][1], ledger[1][0], ledger[1][1], all, projectIds, q.teamIds, limit + 2],
    );
    for (const { grouped, ...row } of r.rows) {
      if (grouped === 1) report.totals = { ...row, key: '' };
      else report.rows.push(row);
    }
    if (report.rows.length > limit) {
      report.rows.length = limit;
      report.truncated = true;
    }
    return report;
  }

  /** From the rollup: whatever the ledger holds of the execution now, while it runs too. */
  async execution(executionId: string, currency: string): Promise<ExecutionCostReply> {
    const [account, ended, parts] = await Promise.all([
      this.pool.query<{ ownerId: string; projectId: string; teamId: string; workflowId: string }>(
        'SELECT owner_id AS "ownerId", project_id AS "projectId", team_id AS "teamId", workflow_id AS "workflowId" FROM accounts WHERE execution_id = $1',
        [executionId],
      ),
      this.pool.query('SELECT 1 FROM execution_ends WHERE execution_id = $1', [executionId]),
      this.pool.query<ModelCost & { kind: string; cpuMs: number; memoryMibMs: number; wallMs: number }>(
        `SELECT kind, provider, model, unpriced, sum(events)::bigint AS calls, sum(input_tokens)::bigint AS "inputTokens",
                sum(output_tokens)::bigint AS "outputTokens", sum(cache_read_tokens)::bigint AS "cacheReadTokens",
                sum(cache_write_tokens)::bigint AS "cacheWriteTokens", sum(cpu_ms)::bigint AS "cpuMs", sum(memory_mib_ms)::bigint AS "memoryMibMs",
                sum(wall_ms)::bigint AS "wallMs", sum(cost_micros)::bigint AS "costMicros"
           FROM usage_hours WHERE execution_id = $1
          GROUP BY kind, provider, model, unpriced ORDER BY kind, provider, model, unpriced`,
        [executionId],
      ),
    ]);
    const a = account.rows[0];
    const models: ModelCost[] = [];
    const compute = { cpuMs: 0, memoryMibMs: 0, wallMs: 0, costMicros: 0 };
    for (const { kind, cpuMs, memoryMibMs, wallMs, ...m } of parts.rows) {
      if (kind === 'compute') Object.assign(compute, { cpuMs, memoryMibMs, wallMs, costMicros: m.costMicros });
      else models.push(m);
    }
    return {
      executionId,
      known: a !== undefined || parts.rows.length > 0,
      ownerId: a?.ownerId ?? '',
      projectId: a?.projectId ?? '',
      teamId: a?.teamId ?? '',
      workflowId: a?.workflowId ?? '',
      costMicros: compute.costMicros + models.reduce((sum, m) => sum + m.costMicros, 0),
      models,
      compute,
      ended: (ended.rowCount ?? 0) > 0,
      currency,
    };
  }
}
