import { randomUUID } from 'node:crypto';
import { OutputStream, type OutputChunk } from '@paddock/proto';
import { topics, type Bus } from '@paddock/bus';
import { PermanentError } from '@paddock/errors';
import type { OutputFrame } from './provider/provider.js';

const MAX_CHUNK_BYTES = 256 * 1024;
/** How long one publish call retries inside the bus before this publisher tries it again. */
const PUBLISH_RETRY_MS = 5_000;

/** Bytes of each of the job's streams. */
export interface StreamOffsets {
  stdout: number;
  stderr: number;
}

/**
 * Drops the first `skip.stdout` bytes of stdout and `skip.stderr` bytes of stderr, passing on the rest:
 * a job's output read from its start, minus what was published before a crash.
 */
export async function* skipPublished(skip: StreamOffsets, frames: AsyncIterable<OutputFrame>): AsyncGenerator<OutputFrame> {
  const left = { ...skip };
  for await (const frame of frames) {
    const key = frame.stream === OutputStream.OUTPUT_STREAM_STDERR ? 'stderr' : 'stdout';
    if (left[key] >= frame.data.length) {
      left[key] -= frame.data.length;
      continue;
    }
    const rest = left[key] > 0 ? frame.data.subarray(left[key]) : frame.data;
    left[key] = 0;
    yield { stream: frame.stream, data: rest };
  }
}

interface Pending {
  stream: OutputStream;
  parts: Buffer[];
  bytes: number;
}

/**
 * Publishes an execution's output to its stream subject, in order. A write goes out at once when nothing
 * is in flight; writes that arrive meanwhile are merged into the next chunk, so latency stays one round
 * trip and throughput grows with load. Past `maxBytes` the rest is dropped, with a note saying so. While NATS
 * is away nothing is dropped: the writes wait, merged into chunks, until it is back.
 */
export class OutputPublisher {
  private readonly queue: Pending[] = [];
  private flushing: Promise<void> | null = null;
  private written = 0;
  private truncated = false;
  private failure: Error | null = null;

  private ended = false;
  private endPublished = false;
  /** The job's bytes published (or queued) so far, per stream; a chunk carries them as its offsets. */
  private readonly offsets: StreamOffsets;
  private readonly signal: AbortSignal | undefined;

  constructor(
    private readonly bus: Bus,
    private readonly executionId: string,
    private readonly maxBytes: number,
    opts: {
      /** Where an adopted instance's output resumes. */
      resumeAt?: StreamOffsets;
      /** Aborted when the broker shuts down: a chunk waiting for NATS is given up then (the next process resumes it). */
      signal?: AbortSignal;
    } = {},
  ) {
    this.offsets = { ...(opts.resumeAt ?? { stdout: 0, stderr: 0 }) };
    this.signal = opts.signal;
  }

  write(stream: OutputStream, data: Buffer): void {
    if (data.length === 0) return;
    const room = this.maxBytes - this.written;
    // Dropped bytes count as passed: an adopting broker must not publish them either.
    if (data.length > room) this.offsets[stream === OutputStream.OUTPUT_STREAM_STDERR ? 'stderr' : 'stdout'] += data.length - Math.max(room, 0);
    if (this.written >= this.maxBytes) {
      if (!this.truncated) {
        this.truncated = true;
        this.enqueue(OutputStream.OUTPUT_STREAM_SYSTEM, Buffer.from(`\n[paddock] output truncated after ${this.maxBytes} bytes\n`));
      }
      return;
    }
    const kept = data.length > room ? data.subarray(0, room) : data;
    this.written += kept.length;
    this.enqueue(stream, kept);
  }

  system(line: string): void {
    this.enqueue(OutputStream.OUTPUT_STREAM_SYSTEM, Buffer.from(`[paddock] ${line}\n`));
  }

  private enqueue(stream: OutputStream, data: Buffer): void {
    // After the end mark nothing more belongs to this run's output.
    if (this.ended) return;
    const last = this.queue[this.queue.length - 1];
    if (last && last.stream === stream && last.bytes + data.length <= MAX_CHUNK_BYTES) {
      last.parts.push(data);
      last.bytes += data.length;
    } else {
      this.queue.push({ stream, parts: [data], bytes: data.length });
    }
    this.flushing ??= this.drain();
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const next = this.queue.shift()!;
        const atMs = Date.now();
        const at = { stdoutOffset: this.offsets.stdout, stderrOffset: this.offsets.stderr };
        if (next.stream === OutputStream.OUTPUT_STREAM_STDOUT) this.offsets.stdout += next.bytes;
        if (next.stream === OutputStream.OUTPUT_STREAM_STDERR) this.offsets.stderr += next.bytes;
        await this.publish({ stream: next.stream, data: Buffer.concat(next.parts, next.bytes), atMs, eof: false, ...at });
      }
    } finally {
      this.flushing = null;
    }
  }

  private async publish(chunk: Omit<OutputChunk, 'stdoutOffset' | 'stderrOffset'> & Partial<OutputChunk>, msgId: string = randomUUID()): Promise<void> {
    const full: OutputChunk = { stdoutOffset: this.offsets.stdout, stderrOffset: this.offsets.stderr, ...chunk };
    // NATS restarting: the chunk waits (and the writes behind it merge, up to maxBytes) until NATS is back;
    // the job goes on meanwhile. The id makes a retry that did reach NATS the first time count once.
    for (;;) {
      try {
        await this.bus.publish(topics.output, this.executionId, full, { msgId, retryForMs: PUBLISH_RETRY_MS });
        return;
      } catch (err) {
        // Only a chunk NATS can never take is given up, or any when the broker stops (its successor resumes the output).
        if (err instanceof PermanentError || this.bus.nc.isClosed() || this.signal?.aborted) {
          this.failure = err as Error;
          return;
        }
      }
    }
  }

  /**
   * Waits for everything written so far, then marks the end of the output. Safe to call again after it
   * failed: the end mark has one id per execution, so NATS stores it once.
   */
  async end(): Promise<void> {
    this.ended = true;
    while (this.flushing) await this.flushing;
    if (!this.endPublished) {
      const before = this.failure;
      await this.publish({ stream: OutputStream.OUTPUT_STREAM_SYSTEM, data: Buffer.alloc(0), atMs: Date.now(), eof: true }, `${this.executionId}.eof`);
      if (this.failure !== before) throw new Error(`the end of the output of ${this.executionId} could not be published`, { cause: this.failure });
      this.endPublished = true;
    }
    if (this.failure) throw new Error(`output of ${this.executionId} could not be fully published`, { cause: this.failure });
  }
}
