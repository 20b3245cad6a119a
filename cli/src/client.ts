import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { ClientConfig } from './clientConfig.js';
import { ApiError, CommandError, ConnectionError } from './errors.js';
import type { Execution, ExecutionPage, ExecutionRequest } from './execution.js';
import { truncate } from './format.js';

/**
 * The Paddock REST API, as the CLI uses it. JSON calls go through fetch. Streams (logs, artifacts) go
 * through node:http, because fetch gives up on a response body that stays silent for 300 s, and a
 * followed log of a quiet job does exactly that.
 */
export class PaddockClient {
  readonly #baseUrl: string;
  readonly #token: string;

  constructor(config: ClientConfig) {
    this.#baseUrl = config.baseUrl;
    this.#token = config.token;
  }

  createExecution(request: ExecutionRequest): Promise<Execution> {
    return this.json('POST', '/api/v1/executions', request);
  }

  listExecutions(query: { state?: string | undefined; limit?: number | undefined }): Promise<ExecutionPage> {
    const params = new URLSearchParams();
    if (query.state !== undefined) params.set('state', query.state);
    if (query.limit !== undefined) params.set('limit', String(query.limit));
    const search = params.toString() === '' ? '' : `?${params}`;
    return this.json('GET', `/api/v1/executions${search}`);
  }

  getExecution(id: string): Promise<Execution> {
    return this.json('GET', executionPath(id));
  }

  cancelExecution(id: string): Promise<Execution> {
    return this.json('POST', `${executionPath(id)}/cancel`);
  }

  /** The output so far as bytes; with `follow`, the response stays open and ends when the execution does. */
  logs(id: string, opts: { follow: boolean; signal?: AbortSignal }): Promise<IncomingMessage> {
    return this.#stream(`${executionPath(id)}/logs${opts.follow ? '?follow=true' : ''}`, opts.signal);
  }

  /** SSH details of a running agent or service. */
  ssh(id: string): Promise<SshAccess> {
    return this.json('GET', `/api/v1/instances/${encodeURIComponent(id)}/ssh`);
  }

  /** Runs a command in a running instance: NDJSON lines of output, then `{"exitCode": N}`. */
  exec(id: string, cmd: readonly string[], stdin: string | undefined, signal?: AbortSignal): Promise<IncomingMessage> {
    const body = JSON.stringify({ cmd, ...(stdin === undefined ? {} : { stdin }) });
    return this.#stream(`/api/v1/instances/${encodeURIComponent(id)}/exec`, signal, body);
  }

  /** The execution's artifacts as one zip file. */
  artifacts(id: string, signal?: AbortSignal): Promise<IncomingMessage> {
    return this.#stream(`${executionPath(id)}/artifacts.zip`, signal);
  }

  /**
   * One JSON call of the API, for the commands whose routes have no method here (teams, projects, costs,
   * budgets, prices): the answer's JSON, undefined for an empty one (204); a refusal is an ApiError.
   */
  async json<T>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}`, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let status: number;
    let statusText: string;
    let text: string;
    try {
      const response = await fetch(this.#baseUrl + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      status = response.status;
      statusText = response.statusText;
      text = await response.text();
    } catch (err) {
      throw new ConnectionError(this.#baseUrl, err);
    }
    if (status < 200 || status >= 300) throw apiError(status, statusText, text);
    if (text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new CommandError(`unexpected answer from ${method} ${path} (HTTP ${status}): ${truncate(text, 200)}`, { cause: err });
    }
  }

  #stream(path: string, signal: AbortSignal | undefined, body?: string): Promise<IncomingMessage> {
    const url = new URL(this.#baseUrl + path);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { authorization: `Bearer ${this.#token}` };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const req = send(url, { method: body === undefined ? 'GET' : 'POST', headers, signal });
      req.once('error', (err) => reject(signal?.aborted ? err : new ConnectionError(this.#baseUrl, err)));
      req.once('response', (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          resolve(res);
          return;
        }
        readAll(res).then(
          (text) => reject(apiError(status, res.statusMessage ?? '', text)),
          (err: unknown) => reject(new ConnectionError(this.#baseUrl, err)),
        );
      });
      req.end(body);
    });
  }
}

export interface SshAccess {
  host: string;
  port: number;
  username: string;
  password: string;
}

/** The API's `{error: {code, message}}`, or the status line and the start of the body when it is something else. */
export function apiError(status: number, statusText: string, body: string): ApiError {
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } };
    const message = parsed.error?.message;
    if (typeof message === 'string') {
      const code = parsed.error?.code;
      return new ApiError(typeof code === 'string' ? code : `http_${status}`, status, message);
    }
  } catch {
    // not JSON: described below
  }
  const line = [`HTTP ${status}`, statusText].filter((part) => part !== '').join(' ');
  const detail = body.trim() === '' ? '' : `: ${truncate(body, 200)}`;
  return new ApiError(`http_${status}`, status, `${line}${detail}`);
}

function executionPath(id: string): string {
  return `/api/v1/executions/${encodeURIComponent(id)}`;
}

async function readAll(stream: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
