import { Metadata, Server, ServerInterceptingCall, status, type ServerInterceptor, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { isDatabaseUnavailable } from '@paddock/db';
import { NotFoundError, ValidationError } from '@paddock/errors';
import { callerOf, serverCredentials, type PlaneService, type ServiceTls } from '@paddock/plane';
import { BillingService, type Budget as BudgetMessage, type BillingServer, type PriceList as PriceListMessage } from '@paddock/proto';
import { extractContext, withSpan, type Carrier, type Logger } from '@paddock/telemetry';
import type { Admission } from './budgets/admission.js';
import type { BudgetView, Budgets } from './budgets/budgets.js';
import type { CostQueries } from './costs/costQueries.js';
import type { PriceBook } from './prices/priceBook.js';
import type { PriceStore } from './prices/priceStore.js';

/**
 * Which services may call each method: the gateway alone, which decides what its users may see and do
 * before it asks. Keyed by the generated service, so a method added to the proto does not compile until it
 * is given its callers.
 */
export const BILLING_CALLERS: { readonly [M in keyof typeof BillingService]: readonly PlaneService[] } = {
  queryCosts: ['gateway'],
  executionCost: ['gateway'],
  admission: ['gateway'],
  getPrices: ['gateway'],
  setPrices: ['gateway'],
  listBudgets: ['gateway'],
  getBudget: ['gateway'],
  putBudget: ['gateway'],
  deleteBudget: ['gateway'],
};

const CALLERS_BY_PATH = new Map<string, readonly PlaneService[]>(
  (Object.keys(BILLING_CALLERS) as (keyof typeof BillingService)[]).map((m) => [BillingService[m].path, BILLING_CALLERS[m]]),
);

/** What the server answers from. */
export interface BillingApi {
  readonly costs: CostQueries;
  readonly prices: PriceStore;
  readonly budgets: Budgets;
  readonly admission: Admission;
}

function metadataCarrier(md: Metadata): Carrier {
  return {
    get: (key) => {
      const v = md.get(key)[0];
      return v === undefined ? undefined : String(v);
    },
    set: (key, value) => md.set(key, value),
  };
}

/**
 * Every call is checked before its handler runs: the caller is the service its certificate names (the TLS
 * handshake already proved the plane's CA issued it), and it must be one the method allows.
 */
function authorize(log: Logger): ServerInterceptor {
  return (method, call) =>
    new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, pass) => {
            const caller = callerOf(call);
            const allowed = CALLERS_BY_PATH.get(method.path) ?? [];
            if (caller !== undefined && allowed.includes(caller)) return pass(metadata);
            const who = caller ?? 'a caller whose certificate names no Paddock service';
            log.warn({ caller: caller ?? null, method: method.path }, 'call refused');
            call.sendStatus({ code: status.PERMISSION_DENIED, details: `${who} may not call ${method.path}; it is for ${allowed.join(', ') || 'no service'}`, metadata: new Metadata() });
          },
        }),
    });
}

function unary<Req, Res>(name: string, log: Logger, fn: (req: Req) => Promise<Res>): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    withSpan(`billing.${name}`, {}, () => fn(call.request), extractContext(metadataCarrier(call.metadata))).then(
      (res) => callback(null, res),
      (err: unknown) => {
        if (err instanceof ValidationError) return callback({ code: status.INVALID_ARGUMENT, details: err.message });
        if (err instanceof NotFoundError) return callback({ code: status.NOT_FOUND, details: err.message });
        // PostgreSQL briefly away: the gateway answers 503 and its caller tries again.
        if (isDatabaseUnavailable(err)) return callback({ code: status.UNAVAILABLE, details: `billing's database is unavailable: ${(err as Error).message}` });
        log.error({ err }, `${name} failed`);
        callback({ code: status.INTERNAL, details: (err as Error).message });
      },
    );
  };
}

function priceListMessage(book: PriceBook): PriceListMessage {
  const p = book.prices;
  return {
    version: p.version,
    createdAtMs: p.createdAtMs,
    createdBy: p.createdBy,
    currency: p.currency,
    note: p.note,
    models: p.models.map((m) => ({ ...m })),
    compute: { ...p.compute },
  };
}

function budgetMessage({ budget, standing }: BudgetView): BudgetMessage {
  return {
    id: budget.id,
    name: budget.name,
    scope: budget.scope,
    scopeId: budget.scopeId,
    limitMicros: budget.limitMicros,
    period: budget.period,
    thresholdsPercent: [...budget.thresholdsPercent],
    hard: budget.hard,
    action: budget.action,
    webhookUrl: budget.webhookUrl,
    createdBy: budget.createdBy,
    createdAtMs: budget.createdAtMs,
    updatedAtMs: budget.updatedAtMs,
    periodStartMs: standing.period.startMs,
    periodEndMs: standing.period.endMs ?? 0,
    spentMicros: standing.spentMicros,
  };
}

function required(value: string, what: string): string {
  if (value === '') throw new ValidationError(`${what} is required`);
  return value;
}

export interface StartedBillingServer {
  readonly address: string;
  stop(): Promise<void>;
}

/** The gRPC API (proto/paddock/v1/billing.proto, service Billing), over mutual TLS only, for the gateway alone. */
export async function startBillingServer(api: BillingApi, opts: { host: string; port: number; log: Logger; tls: ServiceTls }): Promise<StartedBillingServer> {
  const { log } = opts;
  const currency = async () => (await api.prices.current()).prices.currency;
  const impl: BillingServer = {
    queryCosts: unary('QueryCosts', log, async (req) => api.costs.query(req, await currency())),
    executionCost: unary('ExecutionCost', log, async (req) => api.costs.execution(required(req.executionId, 'execution_id'), await currency())),
    admission: unary('Admission', log, (req) => api.admission.check(req.projectId, req.teamId)),
    getPrices: unary('GetPrices', log, async (req) => priceListMessage(req.version === 0 ? await api.prices.current() : await api.prices.book(req.version))),
    setPrices: unary('SetPrices', log, async (req) =>
      priceListMessage(await api.prices.create({ currency: req.currency, note: req.note, models: req.models, compute: req.compute }, required(req.createdBy, 'created_by'))),
    ),
    listBudgets: unary('ListBudgets', log, async (req) => ({
      budgets: (await api.budgets.list({ all: req.all, projectIds: req.projectIds, teamIds: req.teamIds })).map(budgetMessage),
      currency: await currency(),
    })),
    getBudget: unary('GetBudget', log, async (req) => budgetMessage(await api.budgets.get(required(req.id, 'id')))),
    putBudget: unary('PutBudget', log, async (req) => {
      const saved = await api.budgets.put(
        req.id,
        {
          name: req.name,
          scope: req.scope,
          scopeId: req.scopeId,
          limitMicros: req.limitMicros,
          period: req.period,
          thresholdsPercent: req.thresholdsPercent,
          hard: req.hard,
          action: req.action,
          webhookUrl: req.webhookUrl,
        },
        { by: required(req.changedBy, 'changed_by'), rotateSecret: req.rotateWebhookSecret },
      );
      return { budget: budgetMessage(saved), webhookSecret: saved.webhookSecret };
    }),
    deleteBudget: unary('DeleteBudget', log, async (req) => ({ found: await api.budgets.delete(required(req.id, 'id')) })),
  };
  const server = new Server({ interceptors: [authorize(log)] });
  server.addService(BillingService, impl);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${opts.host}:${opts.port}`, serverCredentials(opts.tls), (err, p) => (err ? reject(err) : resolve(p))),
  );
  let stopped: Promise<void> | undefined;
  return {
    address: `${opts.host}:${port}`,
    stop: () =>
      (stopped ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), 5000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      })),
  };
}
