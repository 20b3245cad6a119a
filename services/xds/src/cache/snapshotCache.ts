import { FULL_STATE_TYPES, PUSH_ORDER } from '../resource/typeUrls.js';
import { type Snapshot, SnapshotInconsistentError } from './snapshot.js';
import {
  ABSENT,
  type ConfigWatcher,
  type DeltaResponse,
  type DeltaWatchRequest,
  type SotwResponse,
  type SotwWatchRequest,
  type XdsNode,
} from './watch.js';

type Watch =
  | { readonly kind: 'sotw'; readonly request: SotwWatchRequest; readonly respond: (r: SotwResponse) => void }
  | { readonly kind: 'delta'; readonly request: DeltaWatchRequest; readonly respond: (r: DeltaResponse) => void };

/** What a state-of-the-world watch is sent from `snapshot`, or null when it has everything already. */
export function sotwResponse(snapshot: Snapshot, request: SotwWatchRequest): SotwResponse | null {
  const present = snapshot.resources(request.typeUrl);
  const { names } = request;
  const resources = names === 'wildcard' ? [...present.values()] : [...names].flatMap((n) => present.get(n) ?? []);
  const answered = new Set(names !== 'wildcard' && FULL_STATE_TYPES.has(request.typeUrl) ? names : resources.map((r) => r.name));
  const version = snapshot.version(request.typeUrl);
  // Same version: only names the stream has just subscribed to (and were never answered) need a response.
  if (version === request.sentVersion && [...answered].every((n) => request.answeredNames.has(n))) return null;
  return { typeUrl: request.typeUrl, version, resources, answered };
}

/** What a delta watch is sent from `snapshot`, or null when the client is up to date. */
export function deltaResponse(snapshot: Snapshot, request: DeltaWatchRequest): DeltaResponse | null {
  const present = snapshot.resources(request.typeUrl);
  const wanted = (name: string): boolean => request.wildcard || request.subscribed.has(name);
  const resources = [...present.values()].filter((r) => wanted(r.name) && request.known.get(r.name) !== r.version);
  const removed = new Set<string>();
  // What the client has and is gone; and names it asked for that do not exist, said once.
  for (const [name, version] of request.known) if (version !== ABSENT && !present.has(name)) removed.add(name);
  for (const name of request.subscribed) if (!present.has(name) && request.known.get(name) !== ABSENT) removed.add(name);
  if (resources.length === 0 && removed.size === 0) return null;
  return { typeUrl: request.typeUrl, systemVersion: snapshot.version(request.typeUrl), resources, removed: [...removed].sort() };
}

/**
 * The latest consistent snapshot of each node group, and the watches of the streams that follow it. Setting
 * a snapshot answers every watch it has something for, clusters first (PUSH_ORDER).
 */
export class SnapshotCache implements ConfigWatcher {
  readonly #snapshots = new Map<string, Snapshot>();
  readonly #watches = new Map<string, Set<Watch>>();

  constructor(private readonly nodeGroup: (node: XdsNode) => string) {}

  groupOf(node: XdsNode): string {
    return this.nodeGroup(node);
  }

  /** Replaces the group's snapshot; throws SnapshotInconsistentError (and keeps the old one) when a reference leads nowhere. */
  setSnapshot(group: string, snapshot: Snapshot): void {
    const problems = snapshot.inconsistencies();
    if (problems.length > 0) throw new SnapshotInconsistentError(group, problems);
    this.#snapshots.set(group, snapshot);
    const watches = [...(this.#watches.get(group) ?? [])].sort((a, b) => PUSH_ORDER.indexOf(a.request.typeUrl) - PUSH_ORDER.indexOf(b.request.typeUrl));
    for (const watch of watches) this.#answer(group, watch, snapshot);
  }

  snapshot(group: string): Snapshot | undefined {
    return this.#snapshots.get(group);
  }

  /** Groups with a snapshot. */
  groups(): string[] {
    return [...this.#snapshots.keys()];
  }

  /** Open watches of a group, for tests and status. */
  openWatches(group: string): number {
    return this.#watches.get(group)?.size ?? 0;
  }

  watchSotw(group: string, request: SotwWatchRequest, respond: (response: SotwResponse) => void): () => void {
    return this.#watch(group, { kind: 'sotw', request, respond });
  }

  watchDelta(group: string, request: DeltaWatchRequest, respond: (response: DeltaResponse) => void): () => void {
    return this.#watch(group, { kind: 'delta', request, respond });
  }

  #watch(group: string, watch: Watch): () => void {
    const snapshot = this.#snapshots.get(group);
    let set = this.#watches.get(group);
    if (!set) this.#watches.set(group, (set = new Set()));
    set.add(watch);
    if (snapshot) this.#answer(group, watch, snapshot);
    return () => {
      this.#remove(group, watch);
    };
  }

  #answer(group: string, watch: Watch, snapshot: Snapshot): void {
    if (watch.kind === 'sotw') {
      const response = sotwResponse(snapshot, watch.request);
      if (!response) return;
      this.#remove(group, watch);
      watch.respond(response);
    } else {
      const response = deltaResponse(snapshot, watch.request);
      if (!response) return;
      this.#remove(group, watch);
      watch.respond(response);
    }
  }

  #remove(group: string, watch: Watch): void {
    const set = this.#watches.get(group);
    if (!set) return;
    set.delete(watch);
    if (set.size === 0) this.#watches.delete(group);
  }
}
