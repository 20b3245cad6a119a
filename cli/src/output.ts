import { once } from 'node:events';
import type { Writable } from 'node:stream';

/** Writes and waits when the stream asks to (a slow pipe reading `paddock logs` must not fill memory). */
export async function writeChunk(stream: Writable, chunk: string | Uint8Array): Promise<void> {
  if (!stream.write(chunk)) await once(stream, 'drain');
}

/** Copies a byte stream to `out` as it arrives, leaving `out` open. */
export async function copyTo(source: AsyncIterable<Uint8Array | string>, out: Writable): Promise<void> {
  for await (const chunk of source) await writeChunk(out, chunk);
}
