import { Duplex } from 'node:stream';

/**
 * A byte stream to a port inside an instance (a relay, or a broker's Relay call) dressed as the socket Node's HTTP client
 * expects from an Agent: `setTimeout` with a real idle timer (the Agent closes pooled connections with it),
 * and the TCP knobs an Agent turns (keep-alive probes, Nagle, ref/unref), which mean nothing over a relay.
 * Bytes pass through with backpressure both ways; ending it half-closes the connection inside; destroying
 * it cancels the relay.
 */
export class RelaySocket extends Duplex {
  readonly #inner: Duplex;
  #timeoutMs = 0;
  #timer: NodeJS.Timeout | undefined;
  /** What net.Socket says while it connects; a relay is handed over connected. */
  readonly connecting = false;

  constructor(inner: Duplex) {
    // As a net.Socket of an HTTP client: the far end's end of stream ends this side too.
    super({ allowHalfOpen: false });
    this.#inner = inner;
    inner.on('data', (chunk: Buffer) => {
      this.#active();
      if (!this.push(chunk)) inner.pause();
    });
    inner.once('end', () => this.push(null));
    inner.once('error', (err: Error) => this.destroy(err));
    inner.once('close', () => {
      if (!this.destroyed && !this.readableEnded) this.destroy();
    });
  }

  get timeout(): number {
    return this.#timeoutMs;
  }

  /**
   * Emits 'timeout' after `ms` without a byte either way; 0 turns it off and removes `callback`, as
   * net.Socket does (the HTTP client relies on that to drop its listener from a pooled socket).
   */
  setTimeout(ms: number, callback?: () => void): this {
    this.#timeoutMs = ms;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (callback) {
      if (ms === 0) this.removeListener('timeout', callback);
      else this.once('timeout', callback);
    }
    if (ms > 0) {
      this.#timer = setTimeout(() => this.emit('timeout'), ms);
      this.#timer.unref();
    }
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  setNoDelay(): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  #active(): void {
    this.#timer?.refresh();
  }

  override _read(): void {
    this.#inner.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#active();
    if (this.#inner.write(chunk)) callback();
    else this.#inner.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#inner.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.#timer);
    this.#inner.destroy();
    callback(error);
  }
}
