import { OutputStream } from '@paddock/proto';

/**
 * Splits Docker's multiplexed attach/logs stream (8-byte frame headers: stream type, 3 zero bytes,
 * big-endian length) into stdout and stderr payloads. Frames may arrive split across reads.
 */
export class DockerDemuxer {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (stream: OutputStream, data: Buffer) => void) {}

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

/** Bytes of each of the job's streams. */
export interface StreamOffsets {
  stdout: number;
  stderr: number;
}

/**
 * Drops the first `skip.stdout` bytes of stdout and `skip.stderr` bytes of stderr, passing on the rest:
 * a container's log read from its start, minus what was published before a crash.
 */
export function skippingPublished(skip: StreamOffsets, onFrame: (stream: OutputStream, data: Buffer) => void) {
  const left = { ...skip };
  return (stream: OutputStream, data: Buffer): void => {
    const key = stream === OutputStream.OUTPUT_STREAM_STDERR ? 'stderr' : 'stdout';
    if (left[key] >= data.length) {
      left[key] -= data.length;
      return;
    }
    const rest = left[key] > 0 ? data.subarray(left[key]) : data;
    left[key] = 0;
    onFrame(stream, rest);
  };
}
