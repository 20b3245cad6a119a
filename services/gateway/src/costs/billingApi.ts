import { Metadata, status, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { PaddockError, UnavailableError, ValidationError } from '@paddock/errors';
import { channelCredentials, channelOptions, type ServiceTls } from '@paddock/plane';
import {
  BillingClient,
  type AdmissionReply,
  type Budget,
  type BudgetList,
  type CostQuery,
  type CostReport,
  type ExecutionCostReply,
  type ListBudgetsRequest,
  type PriceList,
  type PutBudgetReply,
  type PutBudgetRequest,
  type SetPricesRequest,
} from '@paddock/proto';

/** Billing did not answer (down, restarting, its database away): the same request works again shortly. */
export class BillingUnavailableError extends UnavailableError {
  /** What the answer's Retry-After says. */
  readonly retryAfterSeconds: number;

  constructor(details: string, options?: ErrorOptions) {
    super(`billing is not reachable right now (${details}); try again in a few seconds`, options);
    this.retryAfterSeconds = 2;
  }
}

/** Billing answered with a failure of its own: logged there, a 502 here. */
export class BillingFailedError extends PaddockError {
  constructor(details: string, options?: ErrorOptions) {
    super('billing_failed', 502, `billing failed to answer: ${details}`, options);
  }
}

function translate(err: ServiceError): Error {
  switch (err.code) {
    case status.INVALID_ARGUMENT:
      return new ValidationError(err.details, { cause: err });
    case status.NOT_FOUND:
      return new PaddockError('not_found', 404, err.details, { cause: err });
    case status.UNAVAILABLE:
    case status.DEADLINE_EXCEEDED:
    case status.CANCELLED:
      return new BillingUnavailableError(err.details || err.message, { cause: err });
    default:
      return new BillingFailedError(err.details || err.message, { cause: err });
  }
}

type Unary<Req, Res> = (req: Req, md: Metadata, options: { deadline: number }, cb: (err: ServiceError | null, res: Res) => void) => unknown;

/**
 * The gateway's client of billing's gRPC API (services/billing), over the plane's mutual TLS as the gateway,
 * to a server that must show billing's certificate. The gateway decides what its caller may see and do, then
 * asks; billing trusts the scope it is sent.
 */
export class BillingApi {
  readonly #client: BillingClient;
  readonly #deadlineMs: number;

  constructor(address: string, tls: ServiceTls, opts: { deadlineMs?: number } = {}) {
    const creds: ChannelCredentials = channelCredentials(tls, 'billing');
    this.#client = new BillingClient(address, creds, channelOptions('billing'));
    this.#deadlineMs = opts.deadlineMs ?? 10_000;
  }

  queryCosts(q: CostQuery): Promise<CostReport> {
    return this.#call(this.#client.queryCosts, q);
  }

  executionCost(executionId: string): Promise<ExecutionCostReply> {
    return this.#call(this.#client.executionCost, { executionId });
  }

  admission(projectId: string, teamId: string): Promise<AdmissionReply> {
    return this.#call(this.#client.admission, { projectId, teamId });
  }

  /** The current prices (version 0), or a version's. */
  getPrices(version = 0): Promise<PriceList> {
    return this.#call(this.#client.getPrices, { version });
  }

  setPrices(req: SetPricesRequest): Promise<PriceList> {
    return this.#call(this.#client.setPrices, req);
  }

  listBudgets(req: ListBudgetsRequest): Promise<BudgetList> {
    return this.#call(this.#client.listBudgets, req);
  }

  getBudget(id: string): Promise<Budget> {
    return this.#call(this.#client.getBudget, { id });
  }

  putBudget(req: PutBudgetRequest): Promise<PutBudgetReply> {
    return this.#call(this.#client.putBudget, req);
  }

  async deleteBudget(id: string): Promise<boolean> {
    return (await this.#call(this.#client.deleteBudget, { id })).found;
  }

  close(): void {
    this.#client.close();
  }

  #call<Req, Res>(method: Unary<Req, Res>, req: Req): Promise<Res> {
    return new Promise((resolve, reject) =>
      method.call(this.#client, req, new Metadata(), { deadline: Date.now() + this.#deadlineMs }, (err, res) => (err ? reject(translate(err)) : resolve(res))),
    );
  }
}
