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

/**
 * For `docker logs --timestamps` frames: strips the RFC 3339 timestamp Docker puts before each entry and
 * drops entries at or before `afterMs` (already published before a broker restart).
 */
export function timestampedFrame(afterMs: number, onFrame: (stream: OutputStream, data: Buffer) => void) {
  return (stream: OutputStream, data: Buffer): void => {
    const space = data.indexOf(0x20);
    if (space <= 0) return onFrame(stream, data);
    const ts = Date.parse(data.subarray(0, space).toString('latin1'));
    if (Number.isNaN(ts)) return onFrame(stream, data);
    if (ts <= afterMs) return;
    onFrame(stream, data.subarray(space + 1));
  };
}
