import type { TypeUrl } from '../resource/typeUrls.js';
import type { CachedResource } from './snapshot.js';

/** What a client says about itself in its first request (envoy.config.core.v3.Node). */
export interface XdsNode {
  readonly id: string;
  readonly cluster: string;
  /** "envoy", "gRPC Node Pure JS", ... */
  readonly userAgentName: string;
}

/** A state-of-the-world stream's interest in one type, and what it was last sent of it. */
export interface SotwWatchRequest {
  readonly typeUrl: TypeUrl;
  /** Every resource of the type, or those named (an empty set: none). */
  readonly names: ReadonlySet<string> | 'wildcard';
  /** The version this stream was last sent of the type, acknowledged or not; null before the first response. */
  readonly sentVersion: string | null;
  /** The names the response of `sentVersion` answered (SotwResponse.answered). */
  readonly answeredNames: ReadonlySet<string>;
}

export interface SotwResponse {
  readonly typeUrl: TypeUrl;
  readonly version: string;
  /** Every resource of the request's scope that exists: for listeners and clusters, what is left out is gone. */
  readonly resources: readonly CachedResource[];
  /**
   * The names this response settles: those sent, and for listeners and clusters also those asked for that
   * do not exist (the response says so by leaving them out).
   */
  readonly answered: ReadonlySet<string>;
}

/** The version a delta stream records for a name it told the client does not exist. */
export const ABSENT = '';

/** A delta stream's subscription to one type, and the version of each resource the client has. */
export interface DeltaWatchRequest {
  readonly typeUrl: TypeUrl;
  readonly wildcard: boolean;
  /** Names subscribed explicitly (beside a wildcard, or alone). */
  readonly subscribed: ReadonlySet<string>;
  /** Name -> version the client has (ABSENT: told it does not exist). */
  readonly known: ReadonlyMap<string, string>;
}

export interface DeltaResponse {
  readonly typeUrl: TypeUrl;
  /** The snapshot's version of the type, for logs (system_version_info). */
  readonly systemVersion: string;
  /** Resources the client does not have in this version. */
  readonly resources: readonly CachedResource[];
  /** Names the client has (or asked for) that do not exist. */
  readonly removed: readonly string[];
}

/**
 * All the server knows of the cache: which group a node belongs to, and watches. A watch is answered at
 * most once, at once if the cache already has something the stream lacks, otherwise when a snapshot that
 * has something for it is set; the stream then opens a new watch when its client has answered. `cancel`
 * (idempotent) drops a watch that has not been answered.
 */
export interface ConfigWatcher {
  /** The snapshot group that serves `node`; throws NodeRefusedError for a node it cannot serve. */
  groupOf(node: XdsNode): string;
  watchSotw(group: string, request: SotwWatchRequest, respond: (response: SotwResponse) => void): () => void;
  watchDelta(group: string, request: DeltaWatchRequest, respond: (response: DeltaResponse) => void): () => void;
}

/** A node the cache serves no configuration for; the message says what it would take. */
export class NodeRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NodeRefusedError';
  }
}
