import { StringDecoder } from 'node:string_decoder';
import { Transform, type TransformCallback } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate, type Gunzip } from 'node:zlib';
import type { UsageMeter } from './usageMeter.js';

/** How an answer's body is laid out: server-sent events, Gemini's streamed JSON array, or one JSON document. */
export type AnswerFormat = 'sse' | 'json-array' | 'json';

/** The most of one event, array element or whole JSON answer the tap holds to read it (in characters); past it, the rest passes unread. */
const MAX_HELD_CHARS = 32 * 1024 * 1024;

export interface AnswerTapOptions {
  readonly format: AnswerFormat;
  readonly meter: UsageMeter;
  /** The answer's Content-Encoding: usage is read from the decoded bytes while the encoded ones pass. */
  readonly contentEncoding: string | undefined;
  /**
   * Drops server-sent events this returns true for (by their data) instead of passing them: the usage-only
   * chunk of a chat stream whose client did not ask for it. Only for an identity-encoded SSE answer.
   */
  readonly drop?: (data: string) => boolean;
}

/**
 * Passes an answer's bytes through as they come (with the stream's backpressure) and shows them to a usage
 * meter on the way: nothing waits for the whole answer, and whatever was read before the stream ended or
 * was cut is in the meter.
 */
export class AnswerTap extends Transform {
  readonly #meter: UsageMeter;
  readonly #decoder: Gunzip | undefined;
  readonly #text = new StringDecoder('utf8');
  /** Undefined for one JSON document, which is read once whole. */
  readonly #reader: PartReader | undefined;
  /** Set when events are dropped: the tap then passes the text of the events it keeps instead of the bytes it got. */
  readonly #drop: ((data: string) => boolean) | undefined;
  /** A server-sent event, an array element or the whole JSON answer, not complete yet. */
  #held = '';
  #overflowed = false;

  constructor(opts: AnswerTapOptions) {
    super();
    this.#meter = opts.meter;
    this.#decoder = decoderFor(opts.contentEncoding);
    this.#reader = opts.format === 'sse' ? new SseReader(opts.meter) : opts.format === 'json-array' ? new JsonArrayReader(opts.meter) : undefined;
    this.#drop = opts.format === 'sse' && this.#decoder === undefined ? opts.drop : undefined;
    this.#decoder?.on('data', (chunk: Buffer) => this.#read(this.#text.write(chunk)));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (this.#decoder) {
      this.#decoder.write(chunk);
      return done(null, chunk);
    }
    const kept = this.#read(this.#text.write(chunk));
    if (!this.#drop) return done(null, chunk);
    done(null, kept === '' ? undefined : Buffer.from(kept, 'utf8'));
  }

  override _flush(done: TransformCallback): void {
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      const rest = this.#text.end();
      if (rest !== '') this.#read(rest);
      if (!this.#reader && !this.#overflowed) this.#readWhole();
      // An event stream that ends without a blank line after its last event: what is left passes as it came.
      done(null, this.#drop && this.#held !== '' ? Buffer.from(this.#held, 'utf8') : undefined);
    };
    if (!this.#decoder) return finish();
    this.#decoder.once('end', finish).once('error', finish).end();
  }

  override _destroy(error: Error | null, done: (error: Error | null) => void): void {
    this.#decoder?.destroy();
    done(error);
  }

  /** Adds `text` to what is held and reads each part it completes; returns the text of the parts kept (when dropping). */
  #read(text: string): string {
    if (this.#overflowed) return text;
    this.#held += text;
    let kept = '';
    if (this.#reader) {
      const read = this.#reader.read(this.#held, this.#drop);
      this.#held = this.#held.slice(read.consumed);
      kept = read.kept;
    }
    if (this.#held.length > MAX_HELD_CHARS) {
      // Past the bound the rest passes unread; what it held passes too.
      kept += this.#drop ? this.#held : '';
      this.#overflowed = true;
      this.#held = '';
      this.emit('overflow');
    }
    return kept;
  }

  #readWhole(): void {
    try {
      this.#meter.json(JSON.parse(this.#held));
    } catch {
      // Not JSON (an HTML error page of something in between, an answer cut short): nothing to count.
    }
  }
}

function decoderFor(encoding: string | undefined): Gunzip | undefined {
  const name = encoding?.trim().toLowerCase();
  if (name === 'gzip' || name === 'x-gzip') return createGunzip();
  if (name === 'deflate') return createInflate();
  if (name === 'br') return createBrotliDecompress() as unknown as Gunzip;
  return undefined;
}

interface PartReader {
  /**
   * Reads the complete parts at the start of `text`: how many characters they took, and the text of those
   * not dropped (for a filtering tap).
   */
  read(text: string, drop: ((data: string) => boolean) | undefined): { consumed: number; kept: string };
}

/** Server-sent events: blocks of `field: value` lines ending with a blank line (LF, CRLF or CR line ends). */
class SseReader implements PartReader {
  constructor(private readonly meter: UsageMeter) {}

  read(text: string, drop: ((data: string) => boolean) | undefined): { consumed: number; kept: string } {
    const blankLine = /\r\n\r\n|\n\n|\r\r/g;
    let consumed = 0;
    let kept = '';
    for (let m = blankLine.exec(text); m; m = blankLine.exec(text)) {
      const end = m.index + m[0].length;
      const block = text.slice(consumed, m.index);
      const event = parseEvent(block);
      if (event) this.meter.event(event.name, event.data);
      if (drop && !(event && drop(event.data))) kept += text.slice(consumed, end);
      consumed = end;
    }
    return { consumed, kept };
  }
}

function parseEvent(block: string): { name: string | undefined; data: string } | undefined {
  let name: string | undefined;
  const data: string[] = [];
  for (const line of block.split(/\r\n|\n|\r/)) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(line[colon + 1] === ' ' ? colon + 2 : colon + 1);
    if (field === 'event') name = value;
    else if (field === 'data') data.push(value);
  }
  return data.length > 0 ? { name, data: data.join('\n') } : undefined;
}

/**
 * Gemini's stream without `alt=sse`: one JSON array whose elements (objects) arrive one by one. Each
 * element is found by its braces, outside strings, and read as it completes.
 */
class JsonArrayReader implements PartReader {
  /** Where the scan stopped in the text held, and its state there. */
  #scanned = 0;
  #depth = 0;
  #inString = false;
  #escaped = false;
  #start = -1;

  constructor(private readonly meter: UsageMeter) {}

  read(text: string): { consumed: number; kept: string } {
    let consumed = 0;
    for (let i = this.#scanned; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false;
        else if (c === 0x5c) this.#escaped = true;
        else if (c === 0x22) this.#inString = false;
        continue;
      }
      if (c === 0x22) this.#inString = true;
      else if (c === 0x7b || c === 0x5b) {
        this.#depth++;
        // Depth 1 is the array itself; an element starts at depth 2.
        if (this.#depth === 2) this.#start = i;
      } else if (c === 0x7d || c === 0x5d) {
        this.#depth--;
        if (this.#depth === 1 && this.#start >= 0) {
          try {
            this.meter.json(JSON.parse(text.slice(this.#start, i + 1)));
          } catch {
            // Not an element this reader understands: skip it.
          }
          this.#start = -1;
          consumed = i + 1;
        }
      }
    }
    if (this.#start < 0) consumed = text.length;
    // The text handed next starts where this one was consumed.
    this.#scanned = text.length - consumed;
    if (this.#start >= 0) this.#start -= consumed;
    return { consumed, kept: '' };
  }
}
