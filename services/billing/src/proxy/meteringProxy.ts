import { createHash, randomUUID } from 'node:crypto';
import { chmod, lstat, unlink } from 'node:fs/promises';
import { Agent as HttpAgent, createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { LlmCredentials, type LlmUsage } from '@paddock/proto';
import type { LlmKey } from '@paddock/secrets';
import type { Logger } from '@paddock/telemetry';
import { AnswerTap, type AnswerFormat } from './answerTap.js';
import { CREDENTIAL_HEADERS, PROVIDERS, type Provider, type Refusal } from './providers.js';
import { routeOf, SERVED, type Route } from './route.js';
import type { Upstreams } from './upstreams.js';
import { usageMeter, type UsageMeter } from './usageMeter.js';

/** A run as the proxy needs it: who it is billed to, whether it is over, and its provider keys, sealed. */
export interface RunAccount {
  executionId: string;
  ownerId: string;
  projectId: string;
  teamId: string;
  workflowId: string;
  ended: boolean;
  /** LlmCredentials, encoded then base64, sealed with the LLM key bound to the execution id; empty: none. */
  sealedCredentials: Buffer;
}

/** The runs by the SHA-256 (lowercase hex) of their run key. */
export interface RunDirectory {
  byKeyHash(sha256Hex: string): Promise<RunAccount | undefined>;
}

/** A spent hard budget of the run's project or team, if any: it stops the run's LLM calls. */
export interface BudgetGate {
  blockingBudget(run: { projectId: string; teamId: string }): Promise<{ budgetId: string; name: string; message: string } | undefined>;
}

/** Where each metered call's tokens go (the bus, for the ledger). */
export interface UsageSink {
  publish(usage: LlmUsage): Promise<void>;
}

export interface StartedMeteringProxy {
  readonly socketPath: string;
  /** Idempotent: stops taking calls, lets those in flight end (cut after a grace time), publishes their usage, removes the socket. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface MeteringProxyOptions {
  readonly socketPath: string;
  readonly upstreams: Upstreams;
  readonly llmKey: LlmKey;
  readonly runs: RunDirectory;
  readonly budgets: BudgetGate;
  readonly usage: UsageSink;
  readonly log: Logger;
}

/** The socket path exists and is not a stale socket this proxy may replace. */
export class ProxySocketError extends Error {
  constructor(
    readonly socketPath: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'ProxySocketError';
  }
}

/** A request body larger than this is refused (413): agents send their whole context, a few MiB at most. */
export const MAX_REQUEST_BYTES = 32 * 1024 * 1024;
/** How long close() lets calls in flight go on before it cuts them. */
const CLOSE_GRACE_MS = 10_000;
/** Hop-by-hop headers (RFC 9110 7.6.1) end at the proxy, in both directions. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
/** Request headers the proxy sets itself. */
const REPLACED = new Set(['host', 'content-length', 'accept-encoding', 'expect', ...CREDENTIAL_HEADERS]);

/**
 * The LLM metering proxy: an HTTP/1.1 server on a unix socket (which the broker's relay offers inside every
 * instance) that takes an agent's provider call made with its run key, checks the run and its budgets,
 * sends the call on with the run's real provider key, streams the answer back as it comes, and publishes
 * the tokens the provider reported (one LlmUsage per call, also for an answer cut short).
 */
export async function startMeteringProxy(opts: MeteringProxyOptions): Promise<StartedMeteringProxy> {
  await removeStaleSocket(opts.socketPath);
  const proxy = new MeteringProxy(opts);
  await proxy.listen();
  return proxy;
}

async function removeStaleSocket(socketPath: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(socketPath)).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isSocket) throw new ProxySocketError(socketPath, `${socketPath} exists and is not a socket: move it away or point PADDOCK_LLM_PROXY_SOCKET elsewhere`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new ProxySocketError(socketPath, `${socketPath} is served by another running process (another billing?): stop it, or point PADDOCK_LLM_PROXY_SOCKET elsewhere`);
  await unlink(socketPath);
}

class MeteringProxy implements StartedMeteringProxy {
  readonly socketPath: string;
  readonly #opts: MeteringProxyOptions;
  readonly #server: Server;
  readonly #agents = { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) };
  /** Calls being handled, their usage publication included. */
  readonly #inFlight = new Set<Promise<void>>();
  #closed: Promise<void> | undefined;

  constructor(opts: MeteringProxyOptions) {
    this.socketPath = opts.socketPath;
    this.#opts = opts;
    this.#server = createServer((req, res) => {
      const handled = this.#handle(req, res).catch((err: unknown) => {
        opts.log.error({ err, url: req.url }, 'LLM proxy: a call failed unexpectedly');
        if (!res.headersSent) sendJson(res, 500, { error: { message: 'the LLM proxy failed; see the billing log' } });
        else res.destroy();
      });
      this.#inFlight.add(handled);
      void handled.finally(() => this.#inFlight.delete(handled));
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.socketPath, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    // Only the host's own services (the broker's relay) connect: no one else on the machine.
    await chmod(this.socketPath, 0o660);
  }

  close(): Promise<void> {
    return (this.#closed ??= this.#close());
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    const cut = setTimeout(() => this.#server.closeAllConnections(), CLOSE_GRACE_MS);
    await this.#settled();
    clearTimeout(cut);
    this.#server.closeAllConnections();
    await closed;
    // A call that came on a kept-alive connection at the last moment was cut: its usage is published too.
    await this.#settled();
    this.#agents.http.destroy();
    this.#agents.https.destroy();
    await unlink(this.socketPath).catch(() => undefined);
  }

  /** Until no call is in flight, those that start meanwhile included. */
  async #settled(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? '';
    const url = new URL(req.url ?? '/', 'http://llm-proxy');
    const found = routeOf(method, url.pathname);
    if ('unknown' in found) {
      const provider = found.unknown === undefined ? PROVIDERS.openai : PROVIDERS[found.unknown];
      return refuse(res, provider, 'not_found', `Paddock's LLM proxy does not serve ${method} ${url.pathname}; it serves ${SERVED}`);
    }
    const route = found;
    const provider = PROVIDERS[route.provider];
    const runKey = provider.runKeyOf(req.headers, url.searchParams);
    if (runKey === undefined) {
      return refuse(res, provider, 'unauthenticated', `no API key: send this run's key (${provider.secret} in its environment) as ${provider.label}'s SDKs do`);
    }
    let run: RunAccount | undefined;
    try {
      run = await this.#opts.runs.byKeyHash(createHash('sha256').update(runKey).digest('hex'));
    } catch (err) {
      this.#opts.log.warn({ err }, 'LLM proxy: cannot look up a run');
      return refuse(res, provider, 'unavailable', 'Paddock cannot look up this run right now; try again shortly');
    }
    if (!run) return refuse(res, provider, 'unauthenticated', `the key sent is not the key of a live Paddock run (a run calls ${provider.label} through Paddock with the ${provider.secret} of its environment)`);
    if (run.ended) return refuse(res, provider, 'unauthenticated', `execution ${run.executionId} has ended: its run key no longer works`);
    const realKey = this.#providerKey(run, provider);
    if (realKey instanceof Error) return refuse(res, provider, 'internal', `Paddock cannot open the provider keys of execution ${run.executionId}; see the billing log`);
    if (realKey === undefined) return refuse(res, provider, 'unauthenticated', `this run has no ${provider.label} key: store ${provider.secret} as a user or project secret`);
    if (route.api !== undefined) {
      let blocking: Awaited<ReturnType<BudgetGate['blockingBudget']>>;
      try {
        blocking = await this.#opts.budgets.blockingBudget(run);
      } catch (err) {
        this.#opts.log.warn({ err, executionId: run.executionId }, 'LLM proxy: cannot check budgets');
        return refuse(res, provider, 'unavailable', 'Paddock cannot check the budgets of this run right now; try again shortly');
      }
      if (blocking) {
        const named = blocking.message.includes(blocking.name) ? blocking.message : `the hard budget "${blocking.name}" (${blocking.budgetId}) is spent: ${blocking.message}`;
        return refuse(res, provider, 'budget', `Paddock stopped this run's LLM calls: ${named}`);
      }
    }
    let body: Buffer | 'too_large';
    try {
      body = await readBody(req);
    } catch {
      return;
    }
    if (body === 'too_large') return refuse(res, provider, 'too_large', `the request body is larger than the ${MAX_REQUEST_BYTES / 1024 / 1024} MiB Paddock's LLM proxy takes`, { close: true });
    await this.#forward({ req, res, url, route, provider, run, realKey, body });
  }

  /** The run's key for `provider`: undefined when it has none, an Error when its keys do not open. */
  #providerKey(run: RunAccount, provider: Provider): string | undefined | Error {
    if (run.sealedCredentials.length === 0) return undefined;
    try {
      const encoded = this.#opts.llmKey.open(run.sealedCredentials, run.executionId);
      const key = LlmCredentials.decode(Buffer.from(encoded, 'base64')).keys[provider.name];
      return key === undefined || key === '' ? undefined : key;
    } catch (err) {
      this.#opts.log.error({ err, executionId: run.executionId }, 'LLM proxy: the provider keys of a run do not open');
      return err instanceof Error ? err : new Error(String(err));
    }
  }

  async #forward(call: { req: IncomingMessage; res: ServerResponse; url: URL; route: Route; provider: Provider; run: RunAccount; realKey: string; body: Buffer }): Promise<void> {
    const { req, res, url, route, provider, run } = call;
    const { log } = this.#opts;
    const base = this.#opts.upstreams[route.provider];
    const target = new URL(base.href);
    target.pathname = `${base.pathname.replace(/\/$/, '')}${route.upstreamPath}`;
    target.search = route.provider === 'gemini' ? withoutKey(url.search) : url.search;
    const askedUsage = route.api === 'chat.completions' ? withStreamUsage(call.body) : undefined;
    const body = askedUsage?.body ?? call.body;
    const headers = requestHeaders(req.headers, req.method ?? 'POST', body.length);
    provider.authorize(headers, call.realKey);

    // A client that goes away, before the answer or during it, ends the upstream call.
    const abort = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    const startedMs = Date.now();
    const t0 = performance.now();
    let answer: IncomingMessage;
    try {
      answer = await send(target, { method: req.method ?? 'POST', headers, agent: target.protocol === 'https:' ? this.#agents.https : this.#agents.http, signal: abort.signal }, body);
    } catch (err) {
      if (abort.signal.aborted) return;
      log.warn({ err, executionId: run.executionId, upstream: target.origin }, 'LLM proxy: the provider cannot be reached');
      return refuse(res, provider, 'upstream', `Paddock cannot reach the ${provider.label} API at ${target.origin}: ${(err as Error).message}`);
    }
    const status = answer.statusCode ?? 502;
    if (route.api === undefined) {
      res.writeHead(status, responseHeaders(answer.headers, false));
      await pipeline(answer, res).catch(() => undefined);
      return;
    }
    const format = answerFormat(answer.headers, route);
    const meter = usageMeter(route.api);
    const tap = new AnswerTap({
      format,
      meter,
      contentEncoding: single(answer.headers['content-encoding']),
      // The usage chunk the client did not ask for is the proxy's alone.
      drop: askedUsage?.added ? isUsageOnlyChunk : undefined,
    });
    tap.once('overflow', () => log.warn({ executionId: run.executionId, api: route.api }, 'LLM proxy: an answer part too large to read passed uncounted'));
    res.writeHead(status, responseHeaders(answer.headers, askedUsage?.added === true));
    res.flushHeaders();
    let cut = false;
    await pipeline(answer, tap, res).catch(() => (cut = true));
    await this.#publish(run, route, meter, {
      status,
      streamed: format !== 'json',
      startedMs,
      durationMs: Math.round(performance.now() - t0),
      requestModel: () => route.model ?? modelOf(call.body),
      cut,
    });
  }

  async #publish(run: RunAccount, route: Route, meter: UsageMeter, call: { status: number; streamed: boolean; startedMs: number; durationMs: number; requestModel: () => string | undefined; cut: boolean }): Promise<void> {
    const { model, tokens } = meter.reading();
    const usage: LlmUsage = {
      eventId: `${run.executionId}.llm.${randomUUID()}`,
      executionId: run.executionId,
      provider: route.provider,
      model: model ?? call.requestModel() ?? '',
      inputTokens: tokens.input,
      outputTokens: tokens.output,
      cacheReadTokens: tokens.cacheRead,
      cacheWriteTokens: tokens.cacheWrite,
      streamed: call.streamed,
      status: call.status,
      durationMs: call.durationMs,
      atMs: call.startedMs + call.durationMs,
      api: route.api ?? '',
    };
    this.#opts.log.debug({ executionId: run.executionId, api: usage.api, model: usage.model, status: usage.status, cut: call.cut, tokens }, 'LLM call metered');
    try {
      await this.#opts.usage.publish(usage);
    } catch (err) {
      this.#opts.log.error({ err, executionId: run.executionId, eventId: usage.eventId, usage }, 'LLM proxy: the usage of a call could not be published');
    }
  }
}

function send(target: URL, options: { method: string; headers: OutgoingHttpHeaders; agent: HttpAgent; signal: AbortSignal }, body: Buffer): Promise<IncomingMessage> {
  return new Promise<IncomingMessage>((resolve, reject) => {
    const request = (target.protocol === 'https:' ? httpsRequest : httpRequest)(target, options, resolve);
    request.once('error', reject);
    request.end(body);
  });
}

/**
 * Reads a request body up to MAX_REQUEST_BYTES; the rest of a larger one is not read (its 413 closes the
 * connection). Rejects when the client goes away before the end.
 */
function readBody(req: IncomingMessage): Promise<Buffer | 'too_large'> {
  if (Number(req.headers['content-length'] ?? 0) > MAX_REQUEST_BYTES) return Promise.resolve('too_large');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = () => {
      req.off('data', onData).off('end', onEnd).off('close', onClose).off('error', onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_REQUEST_BYTES) return void chunks.push(chunk);
      stop();
      req.pause();
      resolve('too_large');
    };
    const onEnd = () => {
      stop();
      resolve(Buffer.concat(chunks));
    };
    const onClose = () => {
      stop();
      reject(new Error('the client went away while sending its request'));
    };
    req.on('data', onData).once('end', onEnd).once('close', onClose).once('error', onClose);
  });
}

function requestHeaders(incoming: IncomingHttpHeaders, method: string, bodyBytes: number): OutgoingHttpHeaders {
  const named = connectionTokens(incoming);
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name) || REPLACED.has(name)) continue;
    headers[name] = value;
  }
  // The tap reads usage from the bytes as they pass; the hop from here to a client is a local socket anyway.
  headers['accept-encoding'] = 'identity';
  if (method !== 'GET' && method !== 'HEAD') headers['content-length'] = bodyBytes;
  return headers;
}

function responseHeaders(incoming: IncomingHttpHeaders, bodyChanged: boolean): OutgoingHttpHeaders {
  const named = connectionTokens(incoming);
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name) || (bodyChanged && name === 'content-length')) continue;
    headers[name] = value;
  }
  return headers;
}

/** Headers a Connection header names are hop-by-hop too. */
function connectionTokens(headers: IncomingHttpHeaders): Set<string> {
  return new Set((headers.connection ?? '').split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== ''));
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function answerFormat(headers: IncomingHttpHeaders, route: Route): AnswerFormat {
  if (/^text\/event-stream/i.test(headers['content-type'] ?? '')) return 'sse';
  return route.api === 'streamGenerateContent' ? 'json-array' : 'json';
}

/** Gemini's SDKs may send the key as ?key=: it is the run key, and never goes further. */
function withoutKey(search: string): string {
  if (search === '') return '';
  const kept = search
    .slice(1)
    .split('&')
    .filter((pair) => pair !== '' && decodeURIComponent(pair.split('=')[0]!.replace(/\+/g, ' ')) !== 'key');
  return kept.length > 0 ? `?${kept.join('&')}` : '';
}

/**
 * A chat stream reports its usage only when asked (stream_options.include_usage): the proxy asks for every
 * stream, and remembers whether the client had, so that a client that had not does not get the extra chunk.
 */
function withStreamUsage(body: Buffer): { body: Buffer; added: boolean } | undefined {
  // Without a "stream" key the call is not streamed: no need to parse it.
  if (!body.includes('"stream"')) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return undefined;
  const request = json as Record<string, unknown>;
  if (request['stream'] !== true) return undefined;
  const options = request['stream_options'];
  const asked = typeof options === 'object' && options !== null && (options as Record<string, unknown>)['include_usage'] === true;
  if (asked) return { body, added: false };
  const streamOptions = typeof options === 'object' && options !== null ? options : {};
  return { body: Buffer.from(JSON.stringify({ ...request, stream_options: { ...streamOptions, include_usage: true } }), 'utf8'), added: true };
}

/** The usage chunk of a chat stream: no choices, a usage object. */
function isUsageOnlyChunk(data: string): boolean {
  if (!data.includes('"usage"')) return false;
  try {
    const chunk = JSON.parse(data) as { choices?: unknown; usage?: unknown };
    return Array.isArray(chunk.choices) && chunk.choices.length === 0 && typeof chunk.usage === 'object' && chunk.usage !== null;
  } catch {
    return false;
  }
}

/** The model a request body names, for a call whose answer named none. */
function modelOf(body: Buffer): string | undefined {
  try {
    const model = (JSON.parse(body.toString('utf8')) as { model?: unknown }).model;
    return typeof model === 'string' ? model : undefined;
  } catch {
    return undefined;
  }
}

function refuse(res: ServerResponse, provider: Provider, why: Refusal, message: string, opts: { close?: boolean } = {}): void {
  const { status, body } = provider.refusal(why, message);
  if (opts.close) res.shouldKeepAlive = false;
  sendJson(res, status, body);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}
