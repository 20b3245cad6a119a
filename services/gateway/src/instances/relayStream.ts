import { Duplex } from 'node:stream';
import { status, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import type { RelayFrame, RelayOpen } from '@paddock/proto';

/**
 * A broker's Relay call as a byte stream: what is written goes to the port inside the instance, what the
 * server there sends is read. Flow control holds both ways: a reader that stops pauses the call (and so,
 * through HTTP/2, the broker and the server inside); a write waits while the call's buffer is full. Ending
 * it half-closes the connection inside; destroying it cancels the call.
 */
export class RelayStream extends Duplex {
  readonly #call: ClientDuplexStream<RelayFrame, RelayFrame>;
  #readEnded = false;

  private constructor(call: ClientDuplexStream<RelayFrame, RelayFrame>, translate: (err: ServiceError) => Error) {
    super({ allowHalfOpen: true });
    this.#call = call;
    call.on('data', (frame: RelayFrame) => {
      if (frame.data.length > 0 && !this.push(Buffer.from(frame.data))) call.pause();
      if (frame.eof) this.#endRead();
    });
    call.on('end', () => this.#endRead());
    call.on('error', (err: ServiceError) => {
      // Cancelled by destroy(): nothing to report.
      if (err.code === status.CANCELLED && this.destroyed) return;
      this.destroy(translate(err));
    });
  }

  /** Opens the call and waits for the broker to say that the connection inside is open (its first frame). */
  static open(call: ClientDuplexStream<RelayFrame, RelayFrame>, open: RelayOpen, translate: (err: ServiceError) => Error): Promise<RelayStream> {
    return new Promise((resolve, reject) => {
      const opened = () => {
        call.off('error', failed);
        resolve(new RelayStream(call, translate));
      };
      const failed = (err: ServiceError) => {
        call.off('data', opened);
        reject(translate(err));
      };
      call.once('data', opened);
      call.once('error', failed);
      call.write({ open, data: Buffer.alloc(0), eof: false });
    });
  }

  #endRead(): void {
    if (this.#readEnded) return;
    this.#readEnded = true;
    this.push(null);
  }

  override _read(): void {
    this.#call.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#call.write({ open: undefined, data: chunk, eof: false })) callback();
    else this.#call.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#call.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#call.cancel();
    callback(error);
  }
}
