import type { FastifyPluginAsync } from 'fastify';
import { ForbiddenError, NotFoundError, ValidationError } from '@paddock/errors';
import { CostGroup, type Budget, type CostScope, type PutBudgetReply, type PutBudgetRequest } from '@paddock/proto';
import type { Principal } from '../auth.js';
import { errorResponses } from '../errors.js';
import { BillingFailedError, BillingUnavailableError, type BillingApi } from './billingApi.js';
import { actorOf, projectNotFound, requireScopeRole, type CostAccess } from './costAccess.js';
import {
  budgetBodySchema,
  budgetJson,
  budgetListQuerySchema,
  budgetListSchema,
  budgetPatchSchema,
  costQuerySchema,
  costReportSchema,
  costRowJson,
  executionCostJson,
  executionCostSchema,
  idParams,
  priceListBodySchema,
  priceListJson,
  priceListSchema,
  savedBudgetSchema,
  type BudgetBody,
  type BudgetPatch,
  type GroupBy,
  type PriceListBody,
} from './schemas.js';

export interface CostRoutesOptions {
  readonly billing: BillingApi;
  readonly access: CostAccess;
}

const GROUPS: Readonly<Record<GroupBy, CostGroup>> = {
  execution: CostGroup.COST_GROUP_EXECUTION,
  workflow: CostGroup.COST_GROUP_WORKFLOW,
  project: CostGroup.COST_GROUP_PROJECT,
  team: CostGroup.COST_GROUP_TEAM,
  user: CostGroup.COST_GROUP_USER,
  model: CostGroup.COST_GROUP_MODEL,
};

/** A time of the query string as epoch ms: digits are epoch ms, anything else an ISO 8601 date or date-time. */
function timeOf(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = /^[0-9]+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isSafeInteger(ms) || ms < 0) throw new ValidationError(`${name} must be an ISO 8601 date or date-time (2025-06-01, 2025-06-01T12:00:00Z) or epoch milliseconds, got "${value}"`);
  return ms;
}

function savedBudget(reply: PutBudgetReply): Budget {
  if (!reply.budget) throw new BillingFailedError('PutBudget answered without the budget');
  return reply.budget;
}

function budgetNotFound(id: string): NotFoundError {
  return new NotFoundError('budget', id);
}

/**
 * Costs, prices and budgets for users: what the caller may see is decided here (through the tenancy's
 * ProjectAccess) and sent to billing as the scope; billing answers within it. Money is in integer
 * micro-units of the prices' currency. Billing unavailable is 503 with Retry-After.
 */
export const costRoutes: FastifyPluginAsync<CostRoutesOptions> = async (app, { billing, access }) => {
  app.addHook('onError', async (_req, reply, err) => {
    if (err instanceof BillingUnavailableError) reply.header('retry-after', String(err.retryAfterSeconds));
  });

  /** The scope of a cost query or budget listing: every project (null) or the ones the principal sees. */
  const visible = async (principal: Principal): Promise<readonly string[] | null> => {
    const projects = await access.visibleProjects(principal);
    return projects === null ? null : [...projects.keys()];
  };

  app.get<{ Querystring: { groupBy?: GroupBy; from?: string; to?: string; project?: string; team?: string; limit?: string } }>(
    '/api/v1/costs',
    {
      config: { projectToken: true },
      schema: {
        tags: ['costs'],
        summary: 'What the executions the caller may see cost, grouped by execution, workflow, project, team, user or model, over a time range',
        querystring: costQuerySchema,
        response: { 200: costReportSchema, ...errorResponses },
      },
    },
    async (req) => {
      const q = req.query;
      const groupBy = q.groupBy ?? 'project';
      const fromMs = timeOf(q.from, 'from') ?? 0;
      const toMs = timeOf(q.to, 'to');
      if (toMs !== undefined && toMs <= fromMs) throw new ValidationError('to must be after from');
      const seen = await visible(req.principal);
      let scope: CostScope;
      if (q.project !== undefined) {
        if (seen !== null && !seen.includes(q.project)) throw projectNotFound(q.project);
        scope = { all: false, projectIds: [q.project] };
      } else {
        scope = seen === null ? { all: true, projectIds: [] } : { all: false, projectIds: [...seen] };
      }
      const report = await billing.queryCosts({
        groupBy: GROUPS[groupBy],
        fromMs,
        toMs: toMs ?? 0,
        scope,
        teamIds: q.team === undefined ? [] : [q.team],
        limit: q.limit === undefined ? 0 : Number(q.limit),
      });
      return {
        groupBy,
        from: fromMs === 0 ? null : new Date(fromMs).toISOString(),
        to: toMs === undefined ? null : new Date(toMs).toISOString(),
        currency: report.currency,
        rows: report.rows.map(costRowJson),
        totals: costRowJson(report.totals),
        truncated: report.truncated,
      };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/executions/:id/cost',
    {
      config: { runToken: true, projectToken: true },
      schema: {
        tags: ['costs'],
        summary: "An execution's cost so far, by model and compute; live while it runs",
        params: idParams,
        response: { 200: executionCostSchema, ...errorResponses },
      },
    },
    async (req) => {
      const { id } = req.params;
      // A run token reaches this route for its own execution only (the authentication hook checks the id).
      if (req.principal.kind !== 'run') {
        const owner = await access.projectOfExecution(id);
        if (owner === undefined || (await access.roleIn(req.principal, owner.projectId)) === undefined) throw new NotFoundError('execution', id);
      }
      return executionCostJson(await billing.executionCost(id));
    },
  );

  app.get<{ Querystring: { version?: string } }>(
    '/api/v1/prices',
    {
      config: { projectToken: true },
      schema: {
        tags: ['costs'],
        summary: 'The prices in force (per million tokens by model; per million CPU-seconds and GiB-seconds), or an earlier version',
        querystring: { type: 'object', additionalProperties: false, properties: { version: { type: 'string', pattern: '^[1-9][0-9]{0,8}$' } } },
        response: { 200: priceListSchema, ...errorResponses },
      },
    },
    async (req) => priceListJson(await billing.getPrices(req.query.version === undefined ? 0 : Number(req.query.version))),
  );

  app.put<{ Body: PriceListBody }>(
    '/api/v1/prices',
    {
      schema: {
        tags: ['costs'],
        summary: 'Set the prices (admin only): a new version, used for usage ingested from now on; earlier costs keep their prices',
        body: priceListBodySchema,
        response: { 200: priceListSchema, ...errorResponses },
      },
    },
    async (req) => {
      const principal = req.principal;
      if (principal.kind !== 'user' || !principal.user.isAdmin) throw new ForbiddenError('only the admin may set prices');
      const body = req.body;
      return priceListJson(
        await billing.setPrices({
          createdBy: principal.user.id,
          currency: body.currency ?? '',
          note: body.note ?? '',
          models: body.models.map((m) => ({
            provider: m.provider,
            model: m.model,
            inputMicrosPerMillion: m.inputMicrosPerMillion ?? 0,
            outputMicrosPerMillion: m.outputMicrosPerMillion ?? 0,
            cacheReadMicrosPerMillion: m.cacheReadMicrosPerMillion ?? 0,
            cacheWriteMicrosPerMillion: m.cacheWriteMicrosPerMillion ?? 0,
          })),
          compute: body.compute,
        }),
      );
    },
  );

  app.get<{ Querystring: { project?: string; team?: string } }>(
    '/api/v1/budgets',
    {
      config: { projectToken: true },
      schema: {
        tags: ['costs'],
        summary: 'The budgets of the projects and teams the caller may see, with what was spent in their current period',
        querystring: budgetListQuerySchema,
        response: { 200: budgetListSchema, ...errorResponses },
      },
    },
    async (req) => {
      const { project, team } = req.query;
      const filter = { all: false, projectIds: [] as string[], teamIds: [] as string[] };
      if (project !== undefined) {
        if ((await access.roleIn(req.principal, project)) === undefined) throw projectNotFound(project);
        filter.projectIds.push(project);
        // The team's budgets stop the project's work too.
        const projectTeam = await access.teamOf(project);
        if (projectTeam !== undefined && (team === undefined || team === projectTeam)) filter.teamIds.push(projectTeam);
      }
      if (team !== undefined && project === undefined) {
        if ((await access.roleInTeam(req.principal, team)) === undefined) throw new NotFoundError('team', team);
        filter.teamIds.push(team);
      }
      if (project === undefined && team === undefined) {
        const seen = await visible(req.principal);
        if (seen === null) filter.all = true;
        else {
          filter.projectIds = [...seen];
          const teams = await Promise.all(seen.map((p) => access.teamOf(p)));
          filter.teamIds = [...new Set(teams.filter((t): t is string => t !== undefined))];
        }
      }
      const list = await billing.listBudgets(filter);
      return { currency: list.currency, items: list.budgets.map(budgetJson) };
    },
  );

  app.post<{ Body: BudgetBody }>(
    '/api/v1/budgets',
    {
      schema: {
        tags: ['costs'],
        summary: "Make a budget for a project (its admins) or a team (the team's admins); its webhook secret is in this answer only",
        body: budgetBodySchema,
        response: { 201: savedBudgetSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const body = req.body;
      if ((body.project === undefined) === (body.team === undefined)) throw new ValidationError('give either project or team: the budget covers one of them');
      const scope = body.project !== undefined ? { scope: 'project', scopeId: body.project } : { scope: 'team', scopeId: body.team as string };
      await requireScopeRole(access, req.principal, scope, 'admin', () => new NotFoundError(scope.scope, scope.scopeId));
      const saved = await billing.putBudget({
        id: '',
        name: body.name ?? '',
        ...scope,
        limitMicros: body.limitMicros,
        period: body.period ?? 'month',
        thresholdsPercent: body.thresholdsPercent ?? [],
        hard: body.hard ?? false,
        action: body.action ?? 'reject',
        webhookUrl: body.webhookUrl ?? '',
        changedBy: actorOf(req.principal),
        rotateWebhookSecret: false,
      });
      return reply.code(201).send({ budget: budgetJson(savedBudget(saved)), webhookSecret: saved.webhookSecret });
    },
  );

  /** The budget, when the principal has `needed` in its scope; one it may not see is not found. */
  const budgetFor = async (principal: Principal, id: string): Promise<Budget> => {
    const budget = await billing.getBudget(id);
    await requireScopeRole(access, principal, budget, 'admin', () => budgetNotFound(id));
    return budget;
  };

  app.patch<{ Params: { id: string }; Body: BudgetPatch }>(
    '/api/v1/budgets/:id',
    {
      schema: {
        tags: ['costs'],
        summary: 'Change a budget (admins of its project or team); with rotateWebhookSecret, the new secret is in this answer only',
        params: idParams,
        body: budgetPatchSchema,
        response: { 200: savedBudgetSchema, ...errorResponses },
      },
    },
    async (req) => {
      const current = await budgetFor(req.principal, req.params.id);
      const patch = req.body;
      const next: PutBudgetRequest = {
        id: current.id,
        name: patch.name ?? current.name,
        scope: current.scope,
        scopeId: current.scopeId,
        limitMicros: patch.limitMicros ?? current.limitMicros,
        period: patch.period ?? current.period,
        thresholdsPercent: patch.thresholdsPercent ?? current.thresholdsPercent,
        hard: patch.hard ?? current.hard,
        action: patch.action ?? current.action,
        webhookUrl: patch.webhookUrl ?? current.webhookUrl,
        changedBy: actorOf(req.principal),
        rotateWebhookSecret: patch.rotateWebhookSecret ?? false,
      };
      const saved = await billing.putBudget(next);
      return { budget: budgetJson(savedBudget(saved)), ...(saved.webhookSecret === '' ? {} : { webhookSecret: saved.webhookSecret }) };
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/api/v1/budgets/:id',
    {
      schema: { tags: ['costs'], summary: 'Delete a budget (admins of its project or team)', params: idParams, response: { 204: { type: 'null' }, ...errorResponses } },
    },
    async (req, reply) => {
      await budgetFor(req.principal, req.params.id);
      if (!(await billing.deleteBudget(req.params.id))) throw budgetNotFound(req.params.id);
      return reply.code(204).send();
    },
  );
};
