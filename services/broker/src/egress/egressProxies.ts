import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '@paddock/telemetry';
import type { RelayEndpoint } from '../relay/endpoints.js';
import { EgressAllowlist } from './allowlist.js';
import { startEgressProxy, type StartedEgressProxy } from './egressProxy.js';

/** Where the egress proxy appears inside an instance: 127.0.0.1:3128, the usual port of an HTTP proxy. */
export const EGRESS_PROXY_PORT = 3128;
export const EGRESS_PROXY_URL = `http://127.0.0.1:${EGRESS_PROXY_PORT}`;

/** The proxy environment of an instance with an allowlist; most HTTP clients (curl, pip, npm, git) honour it. */
export const EGRESS_PROXY_ENV: readonly string[] = Object.freeze([
  `HTTP_PROXY=${EGRESS_PROXY_URL}`,
  `HTTPS_PROXY=${EGRESS_PROXY_URL}`,
  `http_proxy=${EGRESS_PROXY_URL}`,
  `https_proxy=${EGRESS_PROXY_URL}`,
  'NO_PROXY=localhost,127.0.0.1',
  'no_proxy=localhost,127.0.0.1',
]);

/**
 * One egress proxy per execution that asked for `egress`, on a unix socket of this host under `runDir`,
 * offered inside the instance through the outbound relay. The allowlist is kept in a file beside the
 * socket, so that a restarted broker that adopts the instance starts its proxy again.
 */
export class EgressProxies {
  readonly #running = new Map<string, { readonly proxy: StartedEgressProxy; readonly endpoint: RelayEndpoint }>();

  constructor(
    private readonly runDir: string,
    private readonly log: Logger,
    /** Let allowed names lead to this host or private networks (PADDOCK_EGRESS_ALLOW_INTERNAL). */
    private readonly allowInternal = false,
  ) {}

  #socketPath(executionId: string): string {
    return join(this.runDir, `egress-${executionId}.sock`);
  }

  #listPath(executionId: string): string {
    return join(this.runDir, `egress-${executionId}.json`);
  }

  /** Starts the execution's proxy (nothing for an empty list); throws EgressRuleError for a bad entry. */
  async start(executionId: string, entries: readonly string[]): Promise<void> {
    if (entries.length === 0 || this.#running.has(executionId)) return;
    const allowlist = new EgressAllowlist(entries);
    await mkdir(this.runDir, { recursive: true, mode: 0o700 });
    await writeFile(this.#listPath(executionId), JSON.stringify(allowlist.entries), { mode: 0o600 });
    await this.#listen(executionId, allowlist);
  }

  /** After a restart: starts the proxy again if the execution had one; a missing list means it had none. */
  async resume(executionId: string): Promise<void> {
    if (this.#running.has(executionId)) return;
    let text: string;
    try {
      text = await readFile(this.#listPath(executionId), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const entries: unknown = JSON.parse(text);
    if (!Array.isArray(entries) || !entries.every((e) => typeof e === 'string')) throw new Error(`${this.#listPath(executionId)} does not hold a list of hosts`);
    await this.#listen(executionId, new EgressAllowlist(entries));
  }

  async #listen(executionId: string, allowlist: EgressAllowlist): Promise<void> {
    const socketPath = this.#socketPath(executionId);
    const proxy = await startEgressProxy(socketPath, allowlist, this.log.child({ executionId }), { allowInternal: this.allowInternal });
    this.#running.set(executionId, { proxy, endpoint: Object.freeze({ name: 'egress', port: EGRESS_PROXY_PORT, socketPath }) });
    this.log.info({ executionId, egress: allowlist.describe() }, 'egress proxy started');
  }

  /** The relay endpoint of the execution's proxy, if it has one running. */
  endpointsOf(executionId: string): readonly RelayEndpoint[] {
    const running = this.#running.get(executionId);
    return running ? [running.endpoint] : [];
  }

  /**
   * Stops the execution's proxy and its connections. `forget` at the execution's end removes its list
   * too; a broker that stops keeps it for the next process.
   */
  async stop(executionId: string, opts: { forget: boolean }): Promise<void> {
    const running = this.#running.get(executionId);
    this.#running.delete(executionId);
    await running?.proxy.close();
    if (opts.forget) await Promise.all([rm(this.#listPath(executionId), { force: true }), rm(this.#socketPath(executionId), { force: true })]);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#running.keys()].map((id) => this.stop(id, { forget: false })));
  }
}
