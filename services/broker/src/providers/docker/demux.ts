import { OutputStream } from '@paddock/proto';
import type { OutputFrame } from '../../provider/provider.js';

/**
 * Splits Docker's multiplexed attach/logs stream (8-byte frame headers: stream type, 3 zero bytes,
 * big-endian length) into stdout and stderr payloads. Frames may arrive split across reads.
 */
export class DockerDemuxer {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (stream: OutputFrame['stream'], data: Buffer) => void) {}

  push(data: Buffer): void {
    let buf = this.pending.length > 0 ? Buffer.concat([this.pending, data]) : data;
    while (buf.length >= 8) {
      const size = buf.readUInt32BE(4);
      if (buf.length < 8 + size) break;
      const type = buf[0];
      const payload = buf.subarray(8, 8 + size);
      this.onFrame(type === 2 ? OutputStream.OUTPUT_STREAM_STDERR : OutputStream.OUTPUT_STREAM_STDOUT, payload);
      buf = buf.subarray(8 + size);
    }
    this.pending = buf.length > 0 ? Buffer.from(buf) : Buffer.alloc(0);
  }
}

/**
 * The frames of a multiplexed stream, read only as fast as they are consumed: a consumer that stops
 * pulling stops the reads, so the engine's socket fills and the job's writes block (no buffer grows here
 * beyond one read).
 */
export async function* demuxFrames(source: AsyncIterable<Buffer>): AsyncGenerator<OutputFrame> {
  const ready: OutputFrame[] = [];
  const demux = new DockerDemuxer((stream, data) => ready.push({ stream, data }));
  for await (const chunk of source) {
    demux.push(chunk);
    while (ready.length > 0) yield ready.shift()!;
  }
}
