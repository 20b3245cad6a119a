import { createHash } from 'node:crypto';
import type { BlobRef } from '@paddock/proto';
import type { NormalizedRequest } from './request.js';

/**
 * How many bytes of file contents and script may travel inline in the request message. What does not fit
 * is stored once in the blob store and travels by reference, so the message stays far below NATS's
 * 1 MiB max payload whatever the request carries (see REQUEST_MESSAGE_MAX_BYTES).
 */
export const INLINE_INPUTS_MAX_BYTES = 64 * 1024;

/** A request's files and script, split between the message (inline) and the blob store (by reference). */
export interface PlacedInputs {
  readonly files: Record<string, Buffer>;
  /** The script when it travels inline; empty when it has none or goes by reference. */
  readonly script: string;
  readonly fileRefs: Record<string, BlobRef>;
  readonly scriptRef: BlobRef | undefined;
  /** What must be in the blob store before the request is published, by SHA-256. */
  readonly blobs: ReadonlyMap<string, Buffer>;
}

/**
 * Inline while the contents add up to at most INLINE_INPUTS_MAX_BYTES, smallest first (then by path, the
 * script first among equals), so that many small files stay inline and any large one goes by reference.
 * Nothing is written here: the caller stores `blobs` once the whole request is known to be accepted.
 */
export function placeInputs(r: NormalizedRequest): PlacedInputs {
  const SCRIPT = Symbol('script');
  const items: { key: string | typeof SCRIPT; bytes: Buffer }[] = Object.entries(r.files).map(([path, content]) => ({ key: path, bytes: Buffer.from(content, 'utf8') }));
  if (r.script !== null) items.push({ key: SCRIPT, bytes: Buffer.from(r.script, 'utf8') });
  const name = (k: string | typeof SCRIPT) => (k === SCRIPT ? '' : k);
  items.sort((a, b) => a.bytes.length - b.bytes.length || (name(a.key) < name(b.key) ? -1 : name(a.key) > name(b.key) ? 1 : 0));

  const files: Record<string, Buffer> = {};
  const fileRefs: Record<string, BlobRef> = {};
  const blobs = new Map<string, Buffer>();
  let script = '';
  let scriptRef: BlobRef | undefined;
  let inlineBytes = 0;
  for (const { key, bytes } of items) {
    if (inlineBytes + bytes.length <= INLINE_INPUTS_MAX_BYTES) {
      inlineBytes += bytes.length;
      if (key === SCRIPT) script = bytes.toString('utf8');
      else files[key] = bytes;
      continue;
    }
    const ref = { sha256: createHash('sha256').update(bytes).digest('hex'), sizeBytes: bytes.length };
    blobs.set(ref.sha256, bytes);
    if (key === SCRIPT) scriptRef = ref;
    else fileRefs[key] = ref;
  }
  return { files, script, fileRefs, scriptRef, blobs };
}
