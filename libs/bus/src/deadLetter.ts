import { headers as natsHeaders, type MsgHdrs } from 'nats';
import type { StreamName } from './subjects.js';

/**
 * A message a consumer gave up on, as stored on `paddock.v1.deadletter.<consumer>`. The payload is the
 * original bytes, unchanged, so a dead letter of any topic can be decoded with that topic's type or
 * published again on `originalSubject`; where it came from and why rides in NATS headers. Headers rather
 * than a wrapping message keep the dead-letter subject free of a message type of its own and let
 * `nats stream view` show the reason without decoding anything.
 */
export interface DeadLetter {
  /** Its own sequence in PADDOCK_DEADLETTER. */
  readonly seq: number;
  readonly originalSubject: string;
  readonly originalStream: StreamName;
  /** The original's sequence in its stream, where it stays until that stream's retention removes it. */
  readonly originalSeq: number;
  readonly consumer: string;
  /** How many times the consumer was given the message. */
  readonly deliveries: number;
  /** What went wrong, in words a person understands. */
  readonly reason: string;
  /** The class of the last error (`PermanentError`, `TypeError`, ...), or empty when there was none. */
  readonly errorName: string;
  readonly deadAtMs: number;
  /** The original payload; empty when it was too large to store here (`payloadOmitted`). */
  readonly payload: Uint8Array;
  readonly payloadOmitted: boolean;
}

export const DeadLetterHeader = {
  originalSubject: 'Paddock-Original-Subject',
  originalStream: 'Paddock-Original-Stream',
  originalSeq: 'Paddock-Original-Seq',
  consumer: 'Paddock-Consumer',
  deliveries: 'Paddock-Deliveries',
  reason: 'Paddock-Reason',
  errorName: 'Paddock-Error',
  deadAtMs: 'Paddock-Dead-At-Ms',
  payloadOmitted: 'Paddock-Payload-Omitted',
} as const;

/** Headers cannot carry line breaks, and a reason is for reading, not for carrying a whole stack. */
const REASON_MAX_CHARS = 2000;

function headerValue(text: string): string {
  const flat = text.replace(/[\r\n]+/g, ' ').trim();
  return flat.length > REASON_MAX_CHARS ? `${flat.slice(0, REASON_MAX_CHARS - 1)}…` : flat;
}

export type DeadLetterFields = Omit<DeadLetter, 'seq' | 'payload' | 'payloadOmitted'>;

/**
 * The headers of a dead letter: the original's own headers (trace context) without NATS' (`Nats-Msg-Id`
 * would make JetStream drop the dead letters of one message for a second consumer as duplicates).
 */
export function deadLetterHeaders(fields: DeadLetterFields, original: MsgHdrs | undefined): MsgHdrs {
  const h = natsHeaders();
  if (original) {
    for (const [key, values] of original) {
      if (key.toLowerCase().startsWith('nats-')) continue;
      for (const v of values) h.append(key, v);
    }
  }
  h.set(DeadLetterHeader.originalSubject, fields.originalSubject);
  h.set(DeadLetterHeader.originalStream, fields.originalStream);
  h.set(DeadLetterHeader.originalSeq, String(fields.originalSeq));
  h.set(DeadLetterHeader.consumer, fields.consumer);
  h.set(DeadLetterHeader.deliveries, String(fields.deliveries));
  h.set(DeadLetterHeader.reason, headerValue(fields.reason));
  h.set(DeadLetterHeader.errorName, headerValue(fields.errorName));
  h.set(DeadLetterHeader.deadAtMs, String(fields.deadAtMs));
  return h;
}

export function readDeadLetter(seq: number, h: MsgHdrs | undefined, payload: Uint8Array): DeadLetter {
  const get = (key: string): string => (h?.has(key) ? h.get(key) : '');
  return {
    seq,
    originalSubject: get(DeadLetterHeader.originalSubject),
    originalStream: get(DeadLetterHeader.originalStream) as StreamName,
    originalSeq: Number(get(DeadLetterHeader.originalSeq)),
    consumer: get(DeadLetterHeader.consumer),
    deliveries: Number(get(DeadLetterHeader.deliveries)),
    reason: get(DeadLetterHeader.reason),
    errorName: get(DeadLetterHeader.errorName),
    deadAtMs: Number(get(DeadLetterHeader.deadAtMs)),
    payload,
    payloadOmitted: get(DeadLetterHeader.payloadOmitted) !== '',
  };
}
