export interface Execution {
  id: string;
  owner: string;
  kind: string;
  state: string;
  exitCode: number | null;
  error: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  [key: string]: unknown;
}

export const FINAL_STATES = ['completed', 'failed', 'cancelled'];

/** A thin REST client for tests and benchmarks: answers are returned as they come, never interpreted. */
export class ApiClient {
  constructor(
    readonly url: string,
    readonly token: string,
  ) {}

  withToken(token: string): ApiClient {
    return new ApiClient(this.url, token);
  }

  // The body is `any` on purpose: a test reads whatever field it asserts on, and the assertion checks it.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
  async request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Headers }> {
    const res = await fetch(this.url + path, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await res.text();
    let parsed: unknown = text;
    if ((res.headers.get('content-type') ?? '').startsWith('application/json') && text) parsed = JSON.parse(text);
    return { status: res.status, body: parsed, headers: res.headers };
  }

  async submit(body: Record<string, unknown>): Promise<Execution> {
    const r = await this.request('POST', '/api/v1/executions', body);
    if (r.status !== 201) throw new Error(`submit answered ${r.status}: ${JSON.stringify(r.body)}`);
    return r.body as Execution;
  }

  async get(id: string): Promise<Execution> {
    const r = await this.request('GET', `/api/v1/executions/${id}`);
    if (r.status !== 200) throw new Error(`get ${id} answered ${r.status}: ${JSON.stringify(r.body)}`);
    return r.body as Execution;
  }

  /** Polls until the execution is final (or the timeout passes, which throws). */
  async waitFinal(id: string, timeoutMs = 60_000): Promise<Execution> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ex = await this.get(id);
      if (FINAL_STATES.includes(ex.state)) return ex;
      if (Date.now() > deadline) throw new Error(`execution ${id} still ${ex.state} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async waitState(id: string, state: string, timeoutMs = 60_000): Promise<Execution> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ex = await this.get(id);
      if (ex.state === state) return ex;
      if (FINAL_STATES.includes(ex.state)) throw new Error(`execution ${id} ended ${ex.state} (${ex.error}) while waiting for ${state}`);
      if (Date.now() > deadline) throw new Error(`execution ${id} still ${ex.state} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async logs(id: string, follow = false): Promise<string> {
    const r = await fetch(`${this.url}/api/v1/executions/${id}/logs${follow ? '?follow=true' : ''}`, {
      headers: { authorization: `Bearer ${this.token}` },
    });
    if (r.status !== 200) throw new Error(`logs of ${id} answered ${r.status}: ${await r.text()}`);
    return r.text();
  }

  async artifacts(id: string): Promise<{ status: number; bytes: Buffer }> {
    const r = await fetch(`${this.url}/api/v1/executions/${id}/artifacts.zip`, { headers: { authorization: `Bearer ${this.token}` } });
    return { status: r.status, bytes: Buffer.from(await r.arrayBuffer()) };
  }
}
