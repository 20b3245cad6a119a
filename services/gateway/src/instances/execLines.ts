import { StringDecoder } from 'node:string_decoder';

export type StreamName = 'stdout' | 'stderr';

/**
 * The NDJSON lines of an exec's output. As UTF-8 text (the default), a character split across two chunks
 * of output is held back until it is whole, so no line ever carries half of one; bytes that are not UTF-8
 * become U+FFFD. As base64, every byte arrives as it was written.
 */
export class ExecLines {
  readonly #decoders: Record<StreamName, StringDecoder> | undefined;

  constructor(encoding: 'utf8' | 'base64') {
    this.#decoders = encoding === 'utf8' ? { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') } : undefined;
  }

  output(stream: StreamName, data: Uint8Array): string {
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const text = this.#decoders ? this.#decoders[stream].write(bytes) : bytes.toString('base64');
    return text === '' ? '' : `${JSON.stringify({ stream, data: text })}\n`;
  }

  /** What the decoders still hold (an incomplete character at the very end), then the exit code. */
  end(exitCode: number | undefined): string {
    let lines = '';
    for (const stream of ['stdout', 'stderr'] as const) {
      const rest = this.#decoders?.[stream].end() ?? '';
      if (rest !== '') lines += `${JSON.stringify({ stream, data: rest })}\n`;
    }
    return exitCode === undefined ? lines : `${lines}${JSON.stringify({ exitCode })}\n`;
  }
}
