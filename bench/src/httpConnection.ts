import type { Duplex } from 'node:stream';

/** One answered GET. */
export interface HttpAnswer {
  readonly status: number;
  /** Body bytes received (equal to the response's Content-Length). */
  readonly bodyBytes: number;
  /** The body, when asked for with `keepBody`; otherwise only counted. */
  readonly body: Buffer | undefined;
  /** From just before the request was written to the last byte of the body (`performance.now()` ms). */
  readonly ms: number;
}

/** The far end answered something this client does not take, or went away. */
export class HttpConnectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HttpConnectionError';
  }
}

const HEAD_END = Buffer.from('\r\n\r\n');
/** Bigger heads are not what any server here sends: a sign of a stream that is not HTTP. */
const MAX_HEAD_BYTES = 64 * 1024;

interface Pending {
  readonly t0: number;
  readonly keepBody: boolean;
  readonly resolve: (answer: HttpAnswer) => void;
  readonly reject: (err: Error) => void;
  head: Buffer;
  status: number;
  /** Body bytes still expected; -1 while the head is being read. */
  remaining: number;
  bodyBytes: number;
  body: Buffer[];
}

/**
 * HTTP/1.1 GETs, one at a time, over one persistent byte stream: a TCP socket to the ingress, or a WebSocket
 * tunnel to a port inside an instance. The same client on both paths, so that their difference is the path
 * alone. It takes Content-Length bodies only: a response without a length (chunked, or ended by closing)
 * or with `Connection: close` is an error, since every figure it serves assumes a connection kept alive.
 * A connection the far end closed while idle (a server's keep-alive timeout) is opened again before the
 * next request, untimed, as any keep-alive client does; `opened` counts the connections made.
 */
export class HttpConnection {
  #stream: Duplex | undefined;
  #pending: Pending | undefined;
  #closed = false;
  #opened = 0;

  constructor(
    private readonly open: () => Promise<Duplex>,
    /** Sent with every request (Host first); the header names as they should go on the wire. */
    private readonly headers: Readonly<Record<string, string>>,
    /** Says in errors which path this is. */
    private readonly name: string,
  ) {}

  /** Connections made so far: 1 when the first one lasted. */
  get opened(): number {
    return this.#opened;
  }

  /** GET `path`; with `keepBody` the body is returned, otherwise only counted (large downloads). */
  async get(path: string, keepBody = false): Promise<HttpAnswer> {
    if (this.#closed) throw new HttpConnectionError(`${this.name}: closed by the client`);
    if (this.#pending) throw new HttpConnectionError(`${this.name}: a request is already in flight`);
    const stream = this.#stream ?? (await this.#connect());
    const head = [`GET ${path} HTTP/1.1`, ...Object.entries(this.headers).map(([k, v]) => `${k}: ${v}`), '', ''].join('\r\n');
    return new Promise<HttpAnswer>((resolve, reject) => {
      this.#pending = { t0: performance.now(), keepBody, resolve, reject, head: Buffer.alloc(0), status: 0, remaining: -1, bodyBytes: 0, body: [] };
      stream.write(head);
    });
  }

  close(): void {
    this.#closed = true;
    this.#drop(this.#stream, new HttpConnectionError(`${this.name}: closed by the client`));
  }

  async #connect(): Promise<Duplex> {
    const stream = await this.open();
    this.#opened += 1;
    this.#stream = stream;
    stream.on('data', (chunk: Buffer) => this.#onData(stream, chunk));
    stream.once('end', () => this.#drop(stream, new HttpConnectionError(`${this.name}: the far end closed the connection in the middle of a response`)));
    stream.once('close', () => this.#drop(stream, new HttpConnectionError(`${this.name}: the connection closed in the middle of a response`)));
    stream.once('error', (err: Error) => this.#drop(stream, new HttpConnectionError(`${this.name}: ${err.message}`)));
    return stream;
  }

  #onData(stream: Duplex, chunk: Buffer): void {
    const p = this.#pending;
    if (!p) return this.#drop(stream, new HttpConnectionError(`${this.name}: ${chunk.length} bytes arrived with no request in flight`));
    let body = chunk;
    if (p.remaining < 0) {
      p.head = Buffer.concat([p.head, chunk]);
      const end = p.head.indexOf(HEAD_END);
      if (end < 0) {
        if (p.head.length > MAX_HEAD_BYTES) this.#drop(stream, new HttpConnectionError(`${this.name}: no end of the response head in ${p.head.length} bytes`));
        return;
      }
      body = p.head.subarray(end + HEAD_END.length);
      try {
        this.#parseHead(p, p.head.subarray(0, end).toString('latin1'));
      } catch (err) {
        return this.#drop(stream, err as Error);
      }
    }
    if (body.length > p.remaining) {
      return this.#drop(stream, new HttpConnectionError(`${this.name}: ${body.length - p.remaining} bytes more than the Content-Length arrived`));
    }
    p.remaining -= body.length;
    p.bodyBytes += body.length;
    if (p.keepBody && body.length > 0) p.body.push(Buffer.from(body));
    if (p.remaining === 0) {
      const ms = performance.now() - p.t0;
      this.#pending = undefined;
      p.resolve({ status: p.status, bodyBytes: p.bodyBytes, body: p.keepBody ? Buffer.concat(p.body) : undefined, ms });
    }
  }

  #parseHead(p: Pending, head: string): void {
    const [statusLine = '', ...lines] = head.split('\r\n');
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(`${statusLine} `);
    if (!m) throw new HttpConnectionError(`${this.name}: "${statusLine.slice(0, 80)}" is not an HTTP/1.1 status line`);
    const fields = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon > 0) fields.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    if (fields.get('connection')?.toLowerCase() === 'close') throw new HttpConnectionError(`${this.name}: the response says Connection: close`);
    const length = fields.get('content-length');
    if (length === undefined || !/^\d+$/.test(length)) {
      throw new HttpConnectionError(`${this.name}: the response has no Content-Length (transfer-encoding: ${fields.get('transfer-encoding') ?? 'none'})`);
    }
    p.status = Number(m[1]);
    p.remaining = Number(length);
  }

  /** Forgets `stream` (the next request opens another) and fails the request in flight on it, if any. */
  #drop(stream: Duplex | undefined, err: Error): void {
    if (stream === undefined || stream !== this.#stream) return;
    this.#stream = undefined;
    stream.destroy();
    const p = this.#pending;
    this.#pending = undefined;
    p?.reject(err);
  }
}
