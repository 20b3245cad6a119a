import { ConflictError, NotFoundError } from '@paddock/errors';
import { topics, type Bus } from '@paddock/bus';
import type { ExecutionSpec } from '@paddock/proto';
import { sealSpec } from '@paddock/secrets';
import { withSpan, type Logger } from '@paddock/telemetry';
import type { GatewayConfig } from '../config.js';
import { newId } from '../ids.js';
import type { SecretStore } from '../secrets/secretStore.js';
import type { User } from '../users/userStore.js';
import { FINAL_STATES, type ExecutionRow, type ExecutionStore } from './executionStore.js';
import { normalizeRequest, toSpec } from './request.js';
import type { ApiState, ExecutionRequest, Kind } from './schemas.js';

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
  runtime: string | null;
  prompt: string | null;
  repo: { url: string; branch: string | null } | null;
  files: string[];
  env: string[];
  resources: { cpus: number; memoryMb: number };
  timeoutS: number;
  network: 'none' | 'bridge';
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
    // Rows stored before agents existed have none of these.
    runtime: r.runtime ?? null,
    prompt: r.prompt ?? null,
    repo: r.repo ?? null,
    files: r.files,
    env: r.env,
    resources: r.resources,
    timeoutS: r.timeoutS,
    network: r.network,
    service: r.service ?? false,
    createdAt: row.createdAt.toISOString(),
    startedAt: row.startedAt?.toISOString() ?? null,
    finishedAt: row.finishedAt?.toISOString() ?? null,
  };
}

const PUBLISH_TIMEOUT_MS = 1_500;

/** Accepting, finding and cancelling executions on behalf of a user. */
export class ExecutionService {
  constructor(
    private readonly store: ExecutionStore,
    private readonly secrets: SecretStore,
    private readonly bus: Bus,
    private readonly config: GatewayConfig,
    private readonly log: Logger,
  ) {}

  /**
   * Stores the execution, then puts the request on the bus. If NATS is down the answer is still 201: the
   * row is the promise, and the outbox relay publishes it when NATS is back.
   */
  async create(user: User, body: ExecutionRequest): Promise<ExecutionRow> {
    const request = normalizeRequest(body, this.config);
    const id = newId();
    // An agent's provider keys may come from the owner's stored secrets; the request's own env wins. What
    // may be secret is sealed for the broker before the spec is stored or published.
    const spec = sealSpec(toSpec(request, request.kind === 'agent' ? await this.secrets.values(user.id) : {}), this.secrets.box, id);
    // The root of the execution's trace: the scheduler and the broker continue it from the bus message.
    return withSpan('gateway.create_execution', { 'paddock.execution_id': id, 'paddock.owner': user.id }, async () => {
      const row = await this.store.insert(id, user.id, request, spec);
      await this.publishRequest(id, user.id, spec, row.createdAt.getTime());
      return row;
    });
  }

  async publishRequest(id: string, ownerId: string, spec: ExecutionSpec, requestedAtMs: number): Promise<boolean> {
    try {
      // The caller waits for this answer: when NATS is away, the outbox relay publishes later instead.
      await this.bus.publish(topics.executionRequested, id, { executionId: id, ownerId, spec, requestedAtMs }, { msgId: `${id}.requested`, timeoutMs: PUBLISH_TIMEOUT_MS });
      await this.store.markPublished(id);
      return true;
    } catch (err) {
      this.log.warn({ err, executionId: id }, 'request not on the bus yet; the outbox will retry');
      return false;
    }
  }

  /** The execution, if this user may see it; another user's id is simply not found. */
  async get(user: User, id: string): Promise<ExecutionRow> {
    const row = await this.store.get(id, user.isAdmin ? null : user.id);
    if (!row) throw new NotFoundError('execution', id);
    return row;
  }

  async cancel(user: User, id: string): Promise<ExecutionRow> {
    const row = await this.get(user, id);
    if (FINAL_STATES.includes(row.state)) throw new ConflictError(`execution ${id} is already ${row.state}`);
    await this.bus.publish(topics.executionCancel, id, { executionId: id, requestedBy: user.id, requestedAtMs: Date.now() }, { msgId: `${id}.cancel` });
    return row;
  }

  #relaying: Promise<void> | undefined;

  /** Publishes requests that were accepted while NATS was unreachable; one pass at a time. */
  relayOutbox(): Promise<void> {
    this.#relaying ??= (async () => {
      try {
        for (const r of await this.store.unpublished(1000)) {
          if (!(await this.publishRequest(r.id, r.ownerId, r.spec, r.createdAt.getTime()))) return;
        }
      } finally {
        this.#relaying = undefined;
      }
    })();
    return this.#relaying;
  }
}
