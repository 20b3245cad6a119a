import { NatsError } from 'nats';
import { BlobStore } from '@paddock/blobs';
import { ConflictError, MessageTooLargeError, NotFoundError, PermanentError, UnauthorizedError } from '@paddock/errors';
import { topics, type Bus } from '@paddock/bus';
import { ExecutionSpec, type BlobRef } from '@paddock/proto';
import { sealSpec, type SpecKey } from '@paddock/secrets';
import { withSpan, type Logger } from '@paddock/telemetry';
import type { RunPrincipal } from '../auth.js';
import type { GatewayConfig } from '../config.js';
import { newId } from '../ids.js';
import type { SecretStore } from '../secrets/secretStore.js';
import type { User } from '../users/userStore.js';
import { FINAL_STATES, type ExecutionRow, type ExecutionStore, type UnpublishedRow } from './executionStore.js';
import { IdempotencyKeys, requestDigest, type Queryable } from './idempotencyKeys.js';
import { placeInputs } from './inputs.js';
import { normalizeRequest, toSpec } from './request.js';
import { encodeRequested } from './requestSize.js';
import { executionOfRunToken, newRunToken, RUN_TOKEN_ENV, runTokenMatches, runTokenSha256 } from './runTokens.js';
import type { ApiState, ContainerRuntimeName, ExecutionRequest, Kind } from './schemas.js';

export interface ExecutionView {
  id: string;
  owner: string;
  kind: Kind;
  state: ApiState;
  exitCode: number | null;
  error: string | null;
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
    kind: r.kind,
    state: row.state,
    exitCode: row.exitCode,
    error: row.error,
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

/** Accepting, finding and cancelling executions on behalf of a user. */
export class ExecutionService {
  /** Idempotency keys live in the executions' database, in transactions with their rows. */
  readonly #idempotency: IdempotencyKeys;

  constructor(
    private readonly store: ExecutionStore,
    private readonly secrets: SecretStore,
    /** Seals what a spec carries to the broker: the broker's key, not the one of users' stored secrets. */
    private readonly specKey: SpecKey,
    private readonly bus: Bus,
    private readonly config: GatewayConfig,
    private readonly log: Logger,
    private readonly blobs: BlobStore = new BlobStore(config.blobsDir),
  ) {
    this.#idempotency = new IdempotencyKeys(store.pool, secrets.box);
  }

  /**
   * Stores the execution, then puts the request on the bus. If NATS is down the answer is still 201: the
   * row is the promise, and the outbox relay publishes it when NATS is back. A request too large for the
   * bus is refused (413) before anything is stored; large files and scripts go to the blob store first.
   */
  async create(user: User, body: ExecutionRequest): Promise<ExecutionRow> {
    return (await this.#accept(user, body, undefined)).row;
  }

  /**
   * `create` under an idempotency key: the first request with `key` from this user creates the execution;
   * for 24 h a request with the same key and the same body gets that execution back (`replayed`) instead of
   * a second one, and one with another body is refused (422). Two at the same moment create one.
   */
  async createOnce(user: User, body: ExecutionRequest, key: string): Promise<{ row: ExecutionRow; replayed: boolean }> {
    const digest = requestDigest(body);
    // Before the request is checked again: what was accepted once is answered the same, even if a secret it
    // names has been deleted since.
    const use = await this.#idempotency.lookup(user.id, key, digest);
    if (use.kind === 'taken') {
      const row = await this.store.get(use.executionId, user.id);
      if (row) return { row, replayed: true };
    }
    return this.#accept(user, body, { key, digest });
  }

  async #accept(user: User, body: ExecutionRequest, idempotency: { key: string; digest: string } | undefined): Promise<{ row: ExecutionRow; replayed: boolean }> {
    const request = normalizeRequest(body, this.config);
    const id = newId();
    const inputs = placeInputs(request);
    // Only the stored secrets the request names enter the container (the request's own env wins), and the
    // run token, which no request can set. What may be secret is sealed for the broker before the spec is
    // stored or published.
    const secretEnv = await this.secrets.valuesOf(user.id, request.secrets);
    const runToken = newRunToken(id);
    const spec = sealSpec(toSpec(request, secretEnv, inputs, { [RUN_TOKEN_ENV]: runToken }), this.specKey, id);
    encodeRequested({ executionId: id, ownerId: user.id, spec, requestedAtMs: Date.now() });
    // The root of the execution's trace: the scheduler and the broker continue it from the bus message.
    return withSpan('gateway.create_execution', { 'paddock.execution_id': id, 'paddock.owner': user.id }, async () => {
      // Before the row: a published request must never name a blob that is not there yet.
      for (const bytes of inputs.blobs.values()) await this.blobs.put(bytes);
      const insert = (db?: Queryable) => this.store.insert(id, user.id, request, spec, runTokenSha256(runToken), db);
      let row: ExecutionRow;
      if (idempotency === undefined) {
        row = await insert();
      } else {
        // The key and the row are stored in one transaction, so a crash leaves both or neither.
        const claim = await this.#idempotency.claim(user.id, idempotency.key, idempotency.digest, id, insert);
        if (claim.kind === 'taken') {
          const first = await this.store.get(claim.executionId, user.id);
          if (!first) throw new NotFoundError('execution', claim.executionId);
          return { row: first, replayed: true };
        }
        row = claim.value;
      }
      const outcome = await this.publishRequest(id, user.id, spec, row.createdAt.getTime());
      if (outcome.kind === 'later') this.log.warn({ err: outcome.err, executionId: id }, 'request not on the bus yet; the outbox will retry');
      if (outcome.kind === 'refused') return { row: (await this.refuse(id, outcome.reason)) ?? row, replayed: false };
      return { row, replayed: false };
    });
  }

  private async publishRequest(id: string, ownerId: string, spec: ExecutionSpec, requestedAtMs: number): Promise<PublishOutcome> {
    try {
      // The caller waits for this answer: when NATS is away, the outbox relay publishes later instead.
      await this.bus.publish(topics.executionRequested, id, { executionId: id, ownerId, spec, requestedAtMs }, { msgId: `${id}.requested`, timeoutMs: PUBLISH_TIMEOUT_MS });
    } catch (err) {
      const reason = this.permanentFailure(err);
      return reason === undefined ? { kind: 'later', err } : { kind: 'refused', reason };
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

  /** The execution, if this user may see it; another user's id is simply not found. */
  async get(user: User, id: string): Promise<ExecutionRow> {
    const row = await this.store.get(id, user.isAdmin ? null : user.id);
    if (!row) throw new NotFoundError('execution', id);
    return row;
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

  async cancel(user: User, id: string): Promise<ExecutionRow> {
    const row = await this.get(user, id);
    if (FINAL_STATES.includes(row.state)) throw new ConflictError(`execution ${id} is already ${row.state}`);
    await this.bus.publish(topics.executionCancel, id, { executionId: id, requestedBy: user.id, requestedAtMs: Date.now() }, { msgId: `${id}.cancel` });
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
    try {
      spec = ExecutionSpec.decode(r.specBytes);
    } catch (err) {
      const reason = `its stored request cannot be read any more (${(err as Error).message}); submit it again`;
      await this.refuse(r.id, reason);
      return { kind: 'refused', reason };
    }
    const outcome = await this.publishRequest(r.id, r.ownerId, spec, r.createdAt.getTime());
    if (outcome.kind === 'refused') await this.refuse(r.id, outcome.reason);
    return outcome;
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
