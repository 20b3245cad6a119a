import { NatsError } from 'nats';
import { BlobStore } from '@paddock/blobs';
import { ConflictError, MessageTooLargeError, NotFoundError, PermanentError, UnauthorizedError } from '@paddock/errors';
import { topics, type Bus } from '@paddock/bus';
import { ExecutionAccount, ExecutionSpec, type BlobRef } from '@paddock/proto';
import { LlmKey, sealSpec, type SpecKey } from '@paddock/secrets';
import { withSpan, type Logger } from '@paddock/telemetry';
import type { Principal, RunPrincipal } from '../auth.js';
import { BillingUnavailableError } from '../costs/billingApi.js';
import { BudgetExceededError, type AdmissionDecision, type BudgetAdmission } from '../costs/budgetAdmission.js';
import type { GatewayConfig } from '../config.js';
import { newId } from '../ids.js';
import type { SecretStore } from '../secrets/secretStore.js';
import { requireProjectRole, type Role } from '../tenancy/projectAccess.js';
import { TenancyStore } from '../tenancy/tenancyStore.js';
import type { User } from '../users/userStore.js';
import { FINAL_STATES, type ExecutionRow, type ExecutionStore, type UnpublishedRow } from './executionStore.js';
import { IdempotencyKeyReusedError, IdempotencyKeys, requestDigest, type Queryable } from './idempotencyKeys.js';
import { placeInputs } from './inputs.js';
import { llmEnv, newRunLlmKey, PROVIDER_KEY_NAMES, providerKeys, runLlmKeySha256, sealLlmCredentials, withoutProviderKeys } from './llmAccess.js';
import { normalizeRequest, toSpec, type NormalizedRequest } from './request.js';
import { encodeRequested } from './requestSize.js';
import { executionOfRunToken, newRunToken, RUN_TOKEN_ENV, runTokenMatches, runTokenSha256 } from './runTokens.js';
import type { ApiState, ContainerRuntimeName, ExecutionRequest, Kind } from './schemas.js';

/**
 * Who acts on executions: a principal, or a user (routes outside this folder that know only `req.user`;
 * they act as that user's principal).
 */
export type Caller = Principal | User;

export function principalOf(caller: Caller): Principal {
  return 'kind' in caller ? caller : { kind: 'user', user: caller };
}

export interface ExecutionView {
  id: string;
  owner: string;
  projectId: string;
  teamId: string;
  kind: Kind;
  state: ApiState;
  exitCode: number | null;
  error: string | null;
  /** While a spent hard budget (action `queue`) holds it back: which budget, and what lifts it. */
  heldByBudget: string | null;
  image: string;
  command: string | null;
  script: string | null;
  /** A script too large to travel inline is kept in the blob store only, and named here. */
  scriptRef: BlobRef | null;
  runtime: string | null;
  prompt: string | null;
  repo: { url: string; branch: string | null } | null;
  files: string[];
  env: string[];
  resources: { cpus: number; memoryMb: number };
  timeoutS: number;
  network: 'none' | 'bridge';
  containerRuntime: ContainerRuntimeName;
  /** Names of the stored secrets it was given. */
  secrets: string[];
  /** The hosts it may reach through the egress proxy. */
  egress: string[];
  service: boolean;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export function view(row: ExecutionRow): ExecutionView {
  const r = row.request;
  return {
    id: row.id,
    owner: row.ownerId,
    projectId: row.projectId,
    teamId: row.teamId,
    kind: r.kind,
    state: row.state,
    exitCode: row.exitCode,
    error: row.error,
    heldByBudget: row.heldByBudget,
    image: r.image,
    command: r.command,
    script: r.script,
    scriptRef: r.scriptRef ?? null,
    // Rows stored before agents existed have none of these.
    runtime: r.runtime ?? null,
    prompt: r.prompt ?? null,
    repo: r.repo ?? null,
    files: r.files,
    env: r.env,
    resources: r.resources,
    timeoutS: r.timeoutS,
    network: r.network,
    // Rows stored before these existed ran under runc and were given every secret of an agent's owner.
    containerRuntime: r.containerRuntime ?? 'runc',
    secrets: r.secrets ?? [],
    egress: r.egress ?? [],
    service: r.service ?? false,
    createdAt: row.createdAt.toISOString(),
    startedAt: row.startedAt?.toISOString() ?? null,
    finishedAt: row.finishedAt?.toISOString() ?? null,
  };
}

const PUBLISH_TIMEOUT_MS = 1_500;
/** The outbox relay's first retry after NATS failed it, and the longest wait between two tries. */
const RELAY_FIRST_RETRY_MS = 2_000;
const RELAY_MAX_RETRY_MS = 10_000;

/** What became of one attempt to put a request on the bus. */
type PublishOutcome =
  | { readonly kind: 'published' }
  /** Held by a spent hard budget that queues: not published, and not an outage either. */
  | { readonly kind: 'held' }
  /** NATS is away or slow: the outbox tries again later. */
  | { readonly kind: 'later'; readonly err: unknown }
  /** It can never be published, whatever NATS's state; the reason is for a person. */
  | { readonly kind: 'refused'; readonly reason: string };

/** NATS failing the outbox: since when, and when the relay tries again. */
interface Outage {
  readonly sinceMs: number;
  failures: number;
  nextAttemptAtMs: number;
}

/** What ExecutionService uses beside its store, secrets, keys and bus; each has a default built from the rest. */
export interface ExecutionServiceOptions {
  readonly blobs?: BlobStore;
  /** Teams, projects and roles; by default over the executions' database. */
  readonly tenancy?: TenancyStore;
  /** Seals provider keys for billing's metering proxy; by default read (or made) from config.llmKeyFile when first needed. */
  readonly llmKey?: LlmKey;
  /**
   * Whether a project's hard budgets let new work start (billing's Admission). Absent: every request is
   * admitted (a gateway without billing).
   */
  readonly admission?: Pick<BudgetAdmission, 'check'>;
}

/** Where a new execution goes, and as whom it runs. */
interface Placement {
  readonly owner: User;
  readonly projectId: string;
  readonly teamId: string;
}

/** Accepting, finding and cancelling executions on behalf of a principal, as its role in each project allows. */
export class ExecutionService {
  /** Idempotency keys live in the executions' database, in transactions with their rows. */
  readonly #idempotency: IdempotencyKeys;
  readonly #blobs: BlobStore;
  #llmKey: Promise<LlmKey> | undefined;
  readonly #admission: Pick<BudgetAdmission, 'check'> | undefined;
  /** Who may do what in which project: the gateway's one ProjectAccess. */
  readonly tenancy: TenancyStore;

  constructor(
    private readonly store: ExecutionStore,
    private readonly secrets: SecretStore,
    /** Seals what a spec carries to the broker: the broker's key, not the one of users' stored secrets. */
    private readonly specKey: SpecKey,
    private readonly bus: Bus,
    private readonly config: GatewayConfig,
    private readonly log: Logger,
    opts: ExecutionServiceOptions = {},
  ) {
    this.#idempotency = new IdempotencyKeys(store.pool, secrets.box);
    this.#blobs = opts.blobs ?? new BlobStore(config.blobsDir);
    this.tenancy = opts.tenancy ?? new TenancyStore(store.pool);
    if (opts.llmKey) this.#llmKey = Promise.resolve(opts.llmKey);
    this.#admission = opts.admission;
  }

  /**
   * What the project's hard budgets say of new work: undefined to go ahead, or the budget's sentence when
   * it is to be held (action `queue`); a `reject` budget refuses it (402, naming the budget). Billing out of
   * reach admits it, logged: the bus, the scheduler and the brokers do not depend on billing, and its
   * metering proxy (in the same process) refuses LLM calls while it is away anyway.
   */
  async #admit(placement: Placement): Promise<string | undefined> {
    if (!this.#admission) return undefined;
    let decision: AdmissionDecision;
    try {
      decision = await this.#admission.check(placement.projectId, placement.teamId);
    } catch (err) {
      if (!(err instanceof BillingUnavailableError)) throw err;
      this.log.warn({ err: err.message, projectId: placement.projectId }, 'billing is out of reach: the execution is admitted without checking budgets');
      return undefined;
    }
    if (decision.allowed) return undefined;
    if (decision.action === 'reject') throw new BudgetExceededError(decision.message, decision.budgetId);
    return decision.message;
  }

  /**
   * Stores the execution, then puts the request on the bus. If NATS is down the answer is still 201: the
   * row is the promise, and the outbox relay publishes it when NATS is back. A request too large for the
   * bus is refused (413) before anything is stored; large files and scripts go to the blob store first.
   */
  async create(caller: Caller, body: ExecutionRequest): Promise<ExecutionRow> {
    return (await this.#accept(await this.#place(principalOf(caller), body.project), body, undefined)).row;
  }

  /**
   * `create` under an idempotency key: the first request with `key` from this owner creates the execution;
   * for 24 h a request with the same key and the same body gets that execution back (`replayed`) instead of
   * a second one, and one with another body (or for another project) is refused (422). Two at the same
   * moment create one.
   */
  async createOnce(caller: Caller, body: ExecutionRequest, key: string): Promise<{ row: ExecutionRow; replayed: boolean }> {
    const placement = await this.#place(principalOf(caller), body.project);
    const digest = requestDigest(body);
    // Before the request is checked again: what was accepted once is answered the same, even if a secret it
    // names has been deleted since.
    const use = await this.#idempotency.lookup(placement.owner.id, key, digest);
    if (use.kind === 'taken') {
      const row = await this.store.get(use.executionId, placement.owner.id);
      if (row) return { row: sameProject(row, placement, key), replayed: true };
    }
    return this.#accept(placement, body, { key, digest });
  }

  /** The request's project (default: a project token's own, else the caller's personal one), where it needs the member role. */
  async #place(principal: Principal, requested: string | undefined): Promise<Placement> {
    if (principal.kind === 'run') throw new UnauthorizedError("a run token is not accepted here: this route needs a user's token");
    const owner = principal.kind === 'user' ? principal.user : principal.creator;
    const projectId = requested ?? (principal.kind === 'projectToken' ? principal.projectId : (await this.tenancy.personalProjectOf(owner.id))?.id);
    if (projectId === undefined) throw new NotFoundError('personal project of user', owner.id);
    await requireProjectRole(this.tenancy, principal, projectId, 'member');
    const teamId = await this.tenancy.teamOf(projectId);
    if (teamId === undefined) throw new NotFoundError('project', projectId);
    return { owner, projectId, teamId };
  }

  async #accept(placement: Placement, body: ExecutionRequest, idempotency: { key: string; digest: string } | undefined): Promise<{ row: ExecutionRow; replayed: boolean }> {
    const { owner, projectId, teamId } = placement;
    const request = normalizeRequest(body, this.config);
    const heldByBudget = await this.#admit(placement);
    const id = newId();
    const inputs = placeInputs(request);
    // Only the stored secrets the request names enter the container (the request's own env wins), and the
    // run token and LLM wiring, which no request can set. Provider keys go to the account instead, sealed for
    // billing's proxy. What may be secret is sealed for the broker before the spec is stored or published.
    const secretEnv = await this.secrets.resolve(owner.id, projectId, request.secrets, { required: true });
    const runLlmKey = newRunLlmKey();
    const llmKeys = await this.#providerKeys(request, secretEnv, owner.id, projectId);
    const account: ExecutionAccount = {
      executionId: id,
      ownerId: owner.id,
      projectId,
      teamId,
      workflowId: '',
      llmKeySha256: runLlmKeySha256(runLlmKey),
      sealedLlmCredentials: sealLlmCredentials(llmKeys, await this.#llm(), id),
      // Set when it is published, from the row: the same instant as the request's.
      requestedAtMs: 0,
    };
    const runToken = newRunToken(id);
    const containerRequest: NormalizedRequest = { ...request, env: withoutProviderKeys(request.env) };
    const paddockEnv = { ...llmEnv(runLlmKey, this.config.llmProxyUrl, Object.keys(llmKeys)), [RUN_TOKEN_ENV]: runToken };
    const spec = sealSpec(toSpec(containerRequest, withoutProviderKeys(secretEnv), inputs, paddockEnv), this.specKey, id);
    encodeRequested({ executionId: id, ownerId: owner.id, spec, requestedAtMs: Date.now() });
    // The root of the execution's trace: the scheduler and the broker continue it from the bus message.
    return withSpan('gateway.create_execution', { 'paddock.execution_id': id, 'paddock.owner': owner.id, 'paddock.project': projectId }, async () => {
      // Before the row: a published request must never name a blob that is not there yet.
      for (const bytes of inputs.blobs.values()) await this.#blobs.put(bytes);
      const insert = (db?: Queryable) =>
        this.store.insert(id, owner.id, request, spec, { runTokenSha256: runTokenSha256(runToken), projectId, account, ...(heldByBudget === undefined ? {} : { heldByBudget }) }, db);
      let row: ExecutionRow;
      if (idempotency === undefined) {
        row = await insert();
      } else {
        // The key and the row are stored in one transaction, so a crash leaves both or neither.
        const claim = await this.#idempotency.claim(owner.id, idempotency.key, idempotency.digest, id, insert);
        if (claim.kind === 'taken') {
          const first = await this.store.get(claim.executionId, owner.id);
          if (!first) throw new NotFoundError('execution', claim.executionId);
          return { row: sameProject(first, placement, idempotency.key), replayed: true };
        }
        row = claim.value;
      }
      if (heldByBudget !== undefined) {
        this.log.info({ executionId: id, projectId, budget: heldByBudget }, 'execution held by a spent hard budget; the outbox publishes it once billing admits its project');
        return { row, replayed: false };
      }
      const outcome = await this.publishRequest(row, spec, account);
      if (outcome.kind === 'later') this.log.warn({ err: outcome.err, executionId: id }, 'request not on the bus yet; the outbox will retry');
      if (outcome.kind === 'refused') return { row: (await this.refuse(id, outcome.reason)) ?? row, replayed: false };
      return { row, replayed: false };
    });
  }

  /**
   * The real provider keys of an execution: from its own env first, then the secrets it names, and for an
   * agent also the secrets of those names its owner, else its project, has stored.
   */
  async #providerKeys(request: NormalizedRequest, secretEnv: Record<string, string>, ownerId: string, projectId: string): Promise<Record<string, string>> {
    const given = [request.env, secretEnv];
    const missing = PROVIDER_KEY_NAMES.filter((name) => given.every((env) => env[name] === undefined));
    const found = request.kind === 'agent' ? await this.secrets.resolve(ownerId, projectId, missing, { required: false }) : {};
    return providerKeys([...given, found]);
  }

  #llm(): Promise<LlmKey> {
    this.#llmKey ??= LlmKey.fromFile(this.config.llmKeyFile);
    return this.#llmKey;
  }

  /** Puts the request and then its account on the bus; the row is done for the outbox only when both are there. */
  private async publishRequest(row: Pick<ExecutionRow, 'id' | 'ownerId' | 'createdAt'>, spec: ExecutionSpec, account: ExecutionAccount): Promise<PublishOutcome> {
    const { id, ownerId } = row;
    const requestedAtMs = row.createdAt.getTime();
    try {
      // The caller waits for this answer: when NATS is away, the outbox relay publishes later instead.
      await this.bus.publish(topics.executionRequested, id, { executionId: id, ownerId, spec, requestedAtMs }, { msgId: `${id}.requested`, timeoutMs: PUBLISH_TIMEOUT_MS });
    } catch (err) {
      const reason = this.permanentFailure(err);
      return reason === undefined ? { kind: 'later', err } : { kind: 'refused', reason };
    }
    try {
      // Both are deduplicated by id: when this one waits for the next pass, the request is published again harmlessly.
      await this.bus.publish(topics.executionAccount, id, { ...account, requestedAtMs }, { msgId: `${id}.account`, timeoutMs: PUBLISH_TIMEOUT_MS });
    } catch (err) {
      const reason = this.permanentFailure(err);
      if (reason === undefined) return { kind: 'later', err };
      // The scheduler has the request and runs it: failing the execution here would only hide that it runs.
      this.log.error({ executionId: id, reason }, 'the account of an execution can never be published: it runs unattributed, without LLM access');
    }
    await this.store.markPublished(id);
    return { kind: 'published' };
  }

  /** Why a publish can never succeed, or undefined when trying again may work (NATS away, slow, restarting). */
  private permanentFailure(err: unknown): string | undefined {
    if (err instanceof MessageTooLargeError) {
      return `its request is ${err.sizeBytes} bytes, more than the ${err.limitBytes} the bus accepts (it was accepted before large files went to the blob store); submit it again`;
    }
    if (err instanceof PermanentError) return `its request can never be put on the bus (${err.message}); submit it again`;
    if (err instanceof NatsError) return undefined;
    // Thrown before anything reached NATS: the message cannot be built from this row (an invalid id or spec).
    if (err instanceof Error && !('code' in err)) return `its request could not be put on the bus (${err.message}); submit it again`;
    return undefined;
  }

  private async refuse(id: string, reason: string): Promise<ExecutionRow | null> {
    const row = await this.store.failUnpublished(id, reason);
    if (row) this.log.error({ executionId: id, reason }, 'request can never be published: execution failed');
    return row;
  }

  /**
   * The execution, if the caller's role in its project is at least `needed`: one it may not see is simply
   * not found; one it sees with a lower role is 403, naming the role needed. The default is the role that
   * acts on an execution (cancel, terminal, exec): reading takes `viewer`, said where it is meant.
   */
  async get(caller: Caller, id: string, needed: Role = 'member'): Promise<ExecutionRow> {
    const row = await this.store.get(id, null);
    if (!row) throw new NotFoundError('execution', id);
    await requireProjectRole(this.tenancy, principalOf(caller), row.projectId, needed, () => new NotFoundError('execution', id));
    return row;
  }

  /**
   * The executions the caller may see, newest first: of one project (which it must see), or of every
   * project it sees (a project token: its own).
   */
  async list(caller: Caller, q: { projectId?: string; state?: ApiState; limit: number; cursor?: string }): Promise<ExecutionRow[]> {
    const principal = principalOf(caller);
    let projectIds: readonly string[] | null;
    if (q.projectId !== undefined) {
      await requireProjectRole(this.tenancy, principal, q.projectId, 'viewer');
      projectIds = [q.projectId];
    } else {
      const visible = await this.tenancy.visibleProjects(principal);
      projectIds = visible === null ? null : [...visible.keys()];
    }
    return this.store.list({ projectIds, limit: q.limit, ...(q.state ? { state: q.state } : {}), ...(q.cursor ? { cursor: q.cursor } : {}) });
  }

  /**
   * Who a run token is: the execution it was issued to, while that execution is not final. A token that
   * does not match its execution's, or whose execution has ended (the token dies with it), is refused.
   */
  async authenticateRun(token: string): Promise<RunPrincipal> {
    const claimed = executionOfRunToken(token);
    const row = claimed === undefined ? null : await this.store.get(claimed, null);
    if (!row?.request.runTokenSha256 || !runTokenMatches(token, row.request.runTokenSha256)) throw new UnauthorizedError('the run token is not valid');
    if (FINAL_STATES.includes(row.state)) throw new UnauthorizedError(`the run token of execution ${row.id} ended with it: the execution is ${row.state}`);
    return { kind: 'run', executionId: row.id, ownerId: row.ownerId };
  }

  /** The execution of a run, as its run token may see it. */
  async getForRun(run: RunPrincipal): Promise<ExecutionRow> {
    const row = await this.store.get(run.executionId, run.ownerId);
    if (!row) throw new NotFoundError('execution', run.executionId);
    return row;
  }

  /** Asks the scheduler to stop it (member role); `requestedBy` is the user, or the creator of the project token. */
  async cancel(caller: Caller, id: string): Promise<ExecutionRow> {
    const principal = principalOf(caller);
    const row = await this.get(principal, id, 'member');
    if (FINAL_STATES.includes(row.state)) throw new ConflictError(`execution ${id} is already ${row.state}`);
    const requestedBy = principal.kind === 'user' ? principal.user.id : principal.kind === 'projectToken' ? principal.creator.id : principal.ownerId;
    await this.bus.publish(topics.executionCancel, id, { executionId: id, requestedBy, requestedAtMs: Date.now() }, { msgId: `${id}.cancel` });
    return row;
  }

  #relaying: Promise<void> | undefined;
  #outage: Outage | undefined;

  /**
   * Publishes requests that were accepted while NATS was unreachable; one pass at a time. A row that can
   * never be published fails its execution with the reason and the pass goes on; while NATS fails the
   * relay, it tries again after 2 s, 4 s, 8 s… (at most 10 s apart), counted from the first failure.
   */
  relayOutbox(nowMs = Date.now()): Promise<void> {
    if (this.#outage && nowMs < this.#outage.nextAttemptAtMs) return this.#relaying ?? Promise.resolve();
    this.#relaying ??= (async () => {
      try {
        let published = 0;
        for (const r of await this.store.unpublished(1000)) {
          const outcome = await this.relayOne(r);
          if (outcome.kind === 'later') {
            this.#retryLater(outcome.err, nowMs);
            return;
          }
          if (outcome.kind === 'published') published++;
        }
        if (this.#outage) {
          this.log.info({ published, outageMs: nowMs - this.#outage.sinceMs }, 'outbox relay: NATS takes requests again');
          this.#outage = undefined;
        }
      } finally {
        this.#relaying = undefined;
      }
    })();
    return this.#relaying;
  }

  private async relayOne(r: UnpublishedRow): Promise<PublishOutcome> {
    let spec: ExecutionSpec;
    let account: ExecutionAccount;
    try {
      spec = ExecutionSpec.decode(r.specBytes);
      // A row stored before accounts existed is billed to its project all the same, with no LLM access.
      account = r.accountBytes
        ? ExecutionAccount.decode(r.accountBytes)
        : { executionId: r.id, ownerId: r.ownerId, projectId: r.projectId, teamId: r.teamId, workflowId: '', llmKeySha256: '', sealedLlmCredentials: Buffer.alloc(0), requestedAtMs: 0 };
    } catch (err) {
      const reason = `its stored request cannot be read any more (${(err as Error).message}); submit it again`;
      await this.refuse(r.id, reason);
      return { kind: 'refused', reason };
    }
    if (r.heldByBudget !== null) {
      const held = await this.#stillHeld(r);
      if (held) return { kind: 'held' };
    }
    const outcome = await this.publishRequest(r, spec, account);
    if (outcome.kind === 'refused') await this.refuse(r.id, outcome.reason);
    return outcome;
  }

  /** Whether a held execution stays held: billing does not admit its project yet, or cannot be asked. */
  async #stillHeld(r: UnpublishedRow): Promise<boolean> {
    if (!this.#admission) return false;
    let decision: AdmissionDecision;
    try {
      decision = await this.#admission.check(r.projectId, r.teamId);
    } catch (err) {
      // Held by a budget, it waits for billing's word rather than start unchecked.
      if (err instanceof BillingUnavailableError) return true;
      throw err;
    }
    if (decision.allowed) {
      this.log.info({ executionId: r.id, projectId: r.projectId }, 'the budget that held the execution admits it now');
      return false;
    }
    if (decision.message !== r.heldByBudget) await this.store.holdByBudget(r.id, decision.message);
    return true;
  }

  /** `attemptMs`: when the pass that failed began; the schedule is counted from the first such pass. */
  #retryLater(err: unknown, attemptMs: number): void {
    if (!this.#outage) {
      this.#outage = { sinceMs: attemptMs, failures: 0, nextAttemptAtMs: attemptMs };
      this.log.warn({ err }, 'outbox relay: NATS does not take requests; retrying with backoff');
    }
    const outage = this.#outage;
    outage.failures++;
    outage.nextAttemptAtMs += Math.min(RELAY_FIRST_RETRY_MS * 2 ** (outage.failures - 1), RELAY_MAX_RETRY_MS);
    this.log.debug({ err, failures: outage.failures, retryInMs: outage.nextAttemptAtMs - attemptMs }, 'outbox relay: publish failed');
  }
}

/**
 * An execution an idempotency key created, as the answer to a retry: only for the project the retry is for.
 * The same body sent for another project is another request, refused like another body.
 */
function sameProject(row: ExecutionRow, placement: Placement, key: string): ExecutionRow {
  if (row.projectId !== placement.projectId) throw new IdempotencyKeyReusedError(key, row.id);
  return row;
}
