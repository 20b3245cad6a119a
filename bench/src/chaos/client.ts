import { setTimeout as sleep } from 'node:timers/promises';

/** An answer of the gateway, as it came. */
export interface Answer {
  readonly status: number;
  readonly body: unknown;
}

export interface ExecutionView {
  readonly id: string;
  readonly state: string;
  readonly exitCode: number | null;
  readonly error: string | null;
  readonly command: string | null;
  readonly script: string | null;
}

export const FINAL_STATES: readonly string[] = ['completed', 'failed', 'cancelled'];

/** A request that never got an answer a client can act on before its deadline. */
export class GaveUpError extends Error {
  constructor(
    readonly what: string,
    readonly attempts: number,
    readonly lastProblem: string,
  ) {
    super(`${what}: no usable answer after ${attempts} attempt(s); the last: ${lastProblem}`);
    this.name = 'GaveUpError';
  }
}

/** An answer that retrying cannot change (a 4xx other than 404 on a read, or an unexpected status). */
export class RefusedError extends Error {
  constructor(
    readonly what: string,
    readonly answer: Answer,
  ) {
    super(`${what} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    this.name = 'RefusedError';
  }
}

/** How a submission went: its execution, and how many earlier attempts may have been stored without an answer. */
export interface Submitted {
  readonly execution: ExecutionView;
  readonly attempts: number;
  /** Attempts that failed after the request had been sent (connection reset, timeout, 5xx). */
  readonly ambiguousAttempts: number;
}

const REQUEST_TIMEOUT_MS = 10_000;
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 2000;

/**
 * The REST API as a client under chaos uses it: every call is retried while the gateway is down or answers
 * 5xx (it is being killed, or PostgreSQL or NATS is), with a backoff, until a deadline. The API has no
 * idempotency key, so a POST retried after an ambiguous failure may create a second execution: that is the
 * client's problem, counted but not blamed on Paddock.
 */
export class ChaosClient {
  constructor(
    readonly url: string,
    private readonly token: string,
  ) {}

  async submit(request: Readonly<Record<string, unknown>>, deadlineMs: number): Promise<Submitted> {
    let ambiguousAttempts = 0;
    const { answer, attempts } = await this.#retry('POST /api/v1/executions', deadlineMs, async () => {
      const result = await this.#send('POST', '/api/v1/executions', request);
      // Anything but a refusal before the body was read may have stored the execution.
      if (result.kind === 'failed' ? result.sent : result.answer.status >= 500) ambiguousAttempts++;
      return result;
    });
    if (answer.status !== 201) throw new RefusedError('POST /api/v1/executions', answer);
    return { execution: answer.body as ExecutionView, attempts, ambiguousAttempts };
  }

  /** 202, or 409 when it had already ended: both are answers, the caller judges them. */
  async cancel(id: string, deadlineMs: number): Promise<Answer> {
    const { answer } = await this.#retry(`POST /api/v1/executions/${id}/cancel`, deadlineMs, () => this.#send('POST', `/api/v1/executions/${id}/cancel`));
    if (answer.status !== 202 && answer.status !== 409) throw new RefusedError(`cancel ${id}`, answer);
    return answer;
  }

  /** The execution, or null when the gateway says it does not exist. */
  async get(id: string, deadlineMs: number): Promise<ExecutionView | null> {
    const { answer } = await this.#retry(`GET /api/v1/executions/${id}`, deadlineMs, () => this.#send('GET', `/api/v1/executions/${id}`));
    if (answer.status === 404) return null;
    if (answer.status !== 200) throw new RefusedError(`GET ${id}`, answer);
    return answer.body as ExecutionView;
  }

  /** Every execution the token sees, newest first. */
  async list(deadlineMs: number): Promise<ExecutionView[]> {
    const all: ExecutionView[] = [];
    let cursor: string | null = null;
    do {
      const path: string = `/api/v1/executions?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const { answer } = await this.#retry(`GET ${path}`, deadlineMs, () => this.#send('GET', path));
      if (answer.status !== 200) throw new RefusedError(`GET ${path}`, answer);
      const page = answer.body as { items: ExecutionView[]; nextCursor: string | null };
      all.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor !== null);
    return all;
  }

  async logs(id: string, deadlineMs: number): Promise<string> {
    const { answer } = await this.#retry(`GET logs of ${id}`, deadlineMs, () => this.#send('GET', `/api/v1/executions/${id}/logs`, undefined, 'text'));
    if (answer.status !== 200) throw new RefusedError(`logs of ${id}`, answer);
    return answer.body as string;
  }

  /** The ZIP's bytes, or the answer when it is not 200 (404: none was saved; 409: not ended). */
  async artifacts(id: string, deadlineMs: number): Promise<Buffer | Answer> {
    const { answer } = await this.#retry(`GET artifacts of ${id}`, deadlineMs, () => this.#send('GET', `/api/v1/executions/${id}/artifacts.zip`, undefined, 'bytes'));
    return answer.status === 200 ? (answer.body as Buffer) : answer;
  }

  async healthy(): Promise<boolean> {
    const result = await this.#send('GET', '/healthz');
    return result.kind === 'answered' && result.answer.status === 200;
  }

  async #retry(what: string, deadlineMs: number, attempt: () => Promise<Attempt>): Promise<{ answer: Answer; attempts: number }> {
    let backoffMs = BACKOFF_FIRST_MS;
    let attempts = 0;
    for (;;) {
      attempts++;
      const result = await attempt();
      if (result.kind === 'answered' && result.answer.status < 500) return { answer: result.answer, attempts };
      const problem = result.kind === 'failed' ? result.problem : `${result.answer.status} ${JSON.stringify(result.answer.body)}`;
      if (Date.now() + backoffMs > deadlineMs) throw new GaveUpError(what, attempts, problem);
      await sleep(backoffMs);
      backoffMs = Math.min(BACKOFF_MAX_MS, backoffMs * 2);
    }
  }

  async #send(method: string, path: string, body?: unknown, as: 'json' | 'text' | 'bytes' = 'json'): Promise<Attempt> {
    let sent = false;
    try {
      const response = await fetch(this.url + path, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      sent = true;
      const isJson = (response.headers.get('content-type') ?? '').startsWith('application/json');
      if (as === 'bytes' && response.status === 200) return { kind: 'answered', answer: { status: 200, body: Buffer.from(await response.arrayBuffer()) } };
      const text = await response.text();
      return { kind: 'answered', answer: { status: response.status, body: isJson && text !== '' && as !== 'text' ? JSON.parse(text) : text } };
    } catch (err) {
      // fetch does not say whether the request left before the connection broke; only a refused
      // connection proves that it did not.
      const cause = (err as { cause?: { code?: string } }).cause;
      const refused = cause?.code === 'ECONNREFUSED';
      return { kind: 'failed', sent: sent || !refused, problem: describe(err) };
    }
  }
}

type Attempt = { kind: 'answered'; answer: Answer } | { kind: 'failed'; sent: boolean; problem: string };

function describe(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return e.cause?.code ?? e.cause?.message ?? e.name ?? String(err);
}
