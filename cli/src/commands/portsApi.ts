import { apiError } from '../client.js';
import type { ClientConfig } from '../clientConfig.js';
import { CommandError, ConnectionError } from '../errors.js';

/** A port open in an instance, as `GET /api/v1/instances/{id}/ports` gives it. */
export interface OpenPort {
  port: number;
  protocol: 'tcp';
  address: string;
  url: string | null;
  visibility: 'private' | 'project' | 'public';
  openedAt: string;
}

/** One event of `GET /api/v1/instances/{id}/ports/events`. */
export type PortEvent =
  | { event: 'ports'; ports: OpenPort[] }
  | { event: 'opened' | 'closed'; port: number; ports: OpenPort[] }
  | { event: 'end'; reason: string };

/** The ports routes of the API, as `paddock ports` and `paddock port-forward` use them. */
export class PortsApi {
  readonly #config: ClientConfig;

  constructor(config: ClientConfig) {
    this.#config = config;
  }

  async list(id: string): Promise<OpenPort[]> {
    const response = await this.#get(`/api/v1/instances/${encodeURIComponent(id)}/ports`, 'application/json');
    const text = await response.text();
    try {
      return JSON.parse(text) as OpenPort[];
    } catch (err) {
      throw new CommandError(`unexpected answer from GET /api/v1/instances/${id}/ports: ${text.slice(0, 200)}`, { cause: err });
    }
  }

  /**
   * The instance's ports now, then each change, until the instance ends (an `end` event) or `signal` aborts.
   * The gateway sends a comment every 15 s, so a quiet stream never looks dead to fetch.
   */
  async *events(id: string, signal: AbortSignal): AsyncGenerator<PortEvent> {
    const response = await this.#get(`/api/v1/instances/${encodeURIComponent(id)}/ports/events`, 'text/event-stream', signal);
    if (!response.body) return;
    const decoder = new TextDecoder();
    let buffer = '';
    let name = 'message';
    let data: string[] = [];
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        for (let newline = buffer.indexOf('\n'); newline !== -1; newline = buffer.indexOf('\n')) {
          const line = buffer.slice(0, newline).replace(/\r$/, '');
          buffer = buffer.slice(newline + 1);
          // Server-Sent Events: fields until a blank line, which dispatches; a line starting with ':' is a comment.
          if (line === '') {
            if (data.length > 0) yield { event: name, ...(JSON.parse(data.join('\n')) as object) } as PortEvent;
            name = 'message';
            data = [];
          } else if (line.startsWith('event:')) {
            name = line.slice(6).trim();
          } else if (line.startsWith('data:')) {
            data.push(line.slice(5).replace(/^ /, ''));
          }
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      throw new CommandError(`the event stream of ${id} broke off: ${(err as Error).message}`, { cause: err });
    }
  }

  async #get(path: string, accept: string, signal?: AbortSignal): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(this.#config.baseUrl + path, { headers: { authorization: `Bearer ${this.#config.token}`, accept }, ...(signal ? { signal } : {}) });
    } catch (err) {
      throw new ConnectionError(this.#config.baseUrl, err);
    }
    if (!response.ok) throw apiError(response.status, response.statusText, await response.text());
    return response;
  }
}
