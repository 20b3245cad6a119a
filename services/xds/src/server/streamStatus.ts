import type { XdsNode } from '../cache/watch.js';
import type { TypeUrl } from '../resource/typeUrls.js';

/** What a stream was sent of one type, and what its client said about it. */
export interface TypeStatus {
  readonly typeUrl: TypeUrl;
  /** The last version sent (state of the world: version_info; delta: system_version_info). */
  readonly sentVersion: string | null;
  /** The last version the client acknowledged: the configuration it runs. */
  readonly ackedVersion: string | null;
  /** The last version it rejected, and why; null once a later version is acknowledged. */
  readonly rejected: { readonly version: string; readonly message: string } | null;
  /** Sent and neither acknowledged nor rejected yet. */
  readonly pending: boolean;
}

export interface StreamStatus {
  readonly id: number;
  readonly protocol: 'sotw' | 'delta';
  readonly node: XdsNode;
  readonly group: string;
  readonly types: readonly TypeStatus[];
}

export interface PushEvent {
  readonly node: XdsNode;
  readonly typeUrl: TypeUrl;
  readonly version: string;
  readonly nonce: string;
  readonly resources: number;
}

export interface AckEvent {
  readonly node: XdsNode;
  readonly typeUrl: TypeUrl;
  readonly version: string;
  /** From the response being written to its acknowledgement. */
  readonly latencyMs: number;
}

export interface NackEvent {
  readonly node: XdsNode;
  readonly typeUrl: TypeUrl;
  /** The version rejected. */
  readonly version: string;
  /** The version the client keeps running, if it acknowledged one on this stream. */
  readonly keptVersion: string | null;
  readonly message: string;
}

/** Told of each push, acknowledgement and rejection, for metrics and tests. */
export interface AdsObserver {
  pushed?(event: PushEvent): void;
  acked?(event: AckEvent): void;
  nacked?(event: NackEvent): void;
}

/** One type's bookkeeping on a stream, shared by both protocols. */
export class TypeProgress {
  nonce: string | null = null;
  /** The nonce already acknowledged or rejected: a later request with it only changes the subscription. */
  answeredNonce: string | null = null;
  sentVersion: string | null = null;
  sentAtMs = 0;
  ackedVersion: string | null = null;
  rejected: { version: string; message: string } | null = null;
  cancel: (() => void) | undefined;

  constructor(readonly typeUrl: TypeUrl) {}

  sent(nonce: string, version: string, nowMs: number): void {
    this.nonce = nonce;
    this.sentVersion = version;
    this.sentAtMs = nowMs;
  }

  /** Whether `nonce` answers the last response, for the first time. */
  answers(nonce: string): boolean {
    return this.nonce !== null && nonce === this.nonce && this.answeredNonce !== nonce;
  }

  status(): TypeStatus {
    return {
      typeUrl: this.typeUrl,
      sentVersion: this.sentVersion,
      ackedVersion: this.ackedVersion,
      rejected: this.rejected,
      pending: this.nonce !== null && this.answeredNonce !== this.nonce,
    };
  }
}
