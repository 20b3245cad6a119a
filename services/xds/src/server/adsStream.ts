import { status } from '@grpc/grpc-js';
import type { Logger } from '@paddock/telemetry';
import { NodeRefusedError, type ConfigWatcher, type XdsNode } from '../cache/watch.js';
import { isTypeUrl, TYPE_LABELS, type TypeUrl } from '../resource/typeUrls.js';
import type { ErrorDetail } from './messages.js';
import type { AdsObserver, StreamStatus, TypeProgress } from './streamStatus.js';

/** Ends a stream with a gRPC status: what the client did wrong, in words. */
export class AdsStreamError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
    this.name = 'AdsStreamError';
  }
}

export interface StreamContext {
  readonly id: number;
  readonly watcher: ConfigWatcher;
  readonly log: Logger;
  readonly observer: AdsObserver;
  /** control_plane.identifier of each response. */
  readonly controlPlane: string;
  readonly now: () => number;
}

/** The fields both protocols' requests share. */
export interface AdsRequest {
  readonly node: XdsNode | null;
  readonly typeUrl: string;
  readonly responseNonce: string;
  readonly errorDetail: ErrorDetail | null;
}

/** What a request says about the last response of its type. */
export type Answer = 'ack' | 'nack' | 'stale' | 'none';

/**
 * What state-of-the-world and delta streams share: who the client is (from its first request), nonces, and
 * telling ACKs from NACKs and stale requests.
 */
export abstract class AdsStream<P extends TypeProgress> {
  #node: XdsNode | null = null;
  #group: string | null = null;
  #nonces = 0;
  #closed = false;
  protected readonly types = new Map<TypeUrl, P>();

  constructor(
    protected readonly context: StreamContext,
    readonly protocol: 'sotw' | 'delta',
  ) {}

  get id(): number {
    return this.context.id;
  }

  get node(): XdsNode | null {
    return this.#node;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The client's node and group: from the first request that carries a node (later ones may omit it). */
  protected identify(request: AdsRequest): { node: XdsNode; group: string; typeUrl: TypeUrl } | null {
    if (!this.#node || !this.#group) {
      if (!request.node) throw new AdsStreamError(status.INVALID_ARGUMENT, 'the first request of a stream must carry the node (node.id and node.cluster)');
      try {
        this.#group = this.context.watcher.groupOf(request.node);
      } catch (err) {
        if (err instanceof NodeRefusedError) throw new AdsStreamError(status.INVALID_ARGUMENT, err.message);
        throw err;
      }
      this.#node = request.node;
      this.context.log.info({ stream: this.context.id, protocol: this.protocol, node: this.#node, group: this.#group }, `xDS stream ${this.context.id} opened by ${this.#node.id}`);
    }
    if (request.typeUrl === '') throw new AdsStreamError(status.INVALID_ARGUMENT, 'type_url is required on an aggregated (ADS) stream');
    if (!isTypeUrl(request.typeUrl)) {
      // Envoy asks for other types only when its bootstrap says so (secrets, runtime): none are served here.
      this.context.log.warn({ stream: this.context.id, node: this.#node, typeUrl: request.typeUrl }, `xDS stream ${this.context.id} asked for ${request.typeUrl}, which Paddock does not serve; ignored`);
      return null;
    }
    return { node: this.#node, group: this.#group, typeUrl: request.typeUrl };
  }

  protected nextNonce(): string {
    this.#nonces += 1;
    return String(this.#nonces);
  }

  /** Applies what the request says of the last response of its type: ACK, NACK, stale or nothing new. */
  protected answer(progress: P, request: AdsRequest, node: XdsNode): Answer {
    if (progress.nonce === null) return 'none';
    if (request.responseNonce !== progress.nonce) return request.responseNonce === '' && this.protocol === 'delta' ? 'none' : 'stale';
    if (!progress.answers(request.responseNonce)) return 'none';
    progress.answeredNonce = request.responseNonce;
    const version = progress.sentVersion ?? '';
    const label = TYPE_LABELS[progress.typeUrl];
    if (request.errorDetail) {
      const message = request.errorDetail.message || `(no message; code ${request.errorDetail.code})`;
      progress.rejected = { version, message };
      this.context.log.warn(
        { stream: this.context.id, node, typeUrl: progress.typeUrl, version, keptVersion: progress.ackedVersion, message },
        `${node.id} rejected ${label}s version ${version} and keeps ${progress.ackedVersion ?? 'what it had'}: ${message}`,
      );
      this.context.observer.nacked?.({ node, typeUrl: progress.typeUrl, version, keptVersion: progress.ackedVersion, message });
      return 'nack';
    }
    progress.ackedVersion = version;
    progress.rejected = null;
    const latencyMs = this.context.now() - progress.sentAtMs;
    this.context.log.debug({ stream: this.context.id, node, typeUrl: progress.typeUrl, version, latencyMs }, `${node.id} applied ${label}s version ${version}`);
    this.context.observer.acked?.({ node, typeUrl: progress.typeUrl, version, latencyMs });
    return 'ack';
  }

  /** Drops the stream's watches; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const progress of this.types.values()) {
      progress.cancel?.();
      progress.cancel = undefined;
    }
    if (this.#node) this.context.log.info({ stream: this.context.id, node: this.#node }, `xDS stream ${this.context.id} of ${this.#node.id} closed`);
  }

  status(): StreamStatus | null {
    if (!this.#node || !this.#group) return null;
    return { id: this.context.id, protocol: this.protocol, node: this.#node, group: this.#group, types: [...this.types.values()].map((p) => p.status()) };
  }
}
