import { createHash } from 'node:crypto';
import type { JsonObject } from '../protos/protoJson.js';
import { isTypeUrl, PUSH_ORDER, TYPE_LABELS, type TypeUrl } from '../resource/typeUrls.js';

/** One resource as the cache holds it: encoded once, sent to every client of its snapshot as is. */
export interface CachedResource {
  readonly name: string;
  readonly typeUrl: TypeUrl;
  /** The message's binary encoding: the value of the Any it is sent in. */
  readonly body: Uint8Array;
  /** A hash of `body`: the resource's version on delta streams, and what a snapshot's versions are made of. */
  readonly version: string;
  /** The resources this one names, by type: a snapshot in which one is missing is not set. */
  readonly references: ReadonlyMap<TypeUrl, readonly string[]>;
  /** The proto3 JSON `body` was encoded from, for people reading the configuration and for tests. */
  readonly json: JsonObject;
}

export interface ResourceInput {
  readonly name: string;
  readonly typeUrl: TypeUrl;
  readonly body: Uint8Array;
  readonly json: JsonObject;
  readonly references?: ReadonlyMap<TypeUrl, readonly string[]>;
}

function hash(parts: Iterable<string | Uint8Array>): string {
  const h = createHash('sha256');
  for (const part of parts) h.update(part);
  return h.digest('hex').slice(0, 16);
}

export function cachedResource(input: ResourceInput): CachedResource {
  return Object.freeze({ ...input, references: input.references ?? new Map(), version: hash([input.body]) });
}

/** A snapshot that cannot be served: each problem names a reference that leads nowhere. */
export class SnapshotInconsistentError extends Error {
  constructor(
    readonly group: string,
    readonly problems: readonly string[],
  ) {
    super(`the snapshot for ${group} is not consistent: ${problems.join('; ')}`);
    this.name = 'SnapshotInconsistentError';
  }
}

interface TypeSet {
  readonly version: string;
  readonly resources: ReadonlyMap<string, CachedResource>;
}

/**
 * One configuration: the resources of every type, and one version per type. A version is a hash of the
 * type's resources (names and content), so it changes exactly when they do, and the same configuration
 * has the same version in any process: a client that reconnects after a restart is not sent it again.
 */
export class Snapshot {
  readonly #types = new Map<TypeUrl, TypeSet>();

  constructor(resources: Iterable<CachedResource>) {
    const byType = new Map<TypeUrl, Map<string, CachedResource>>(PUSH_ORDER.map((t) => [t, new Map()]));
    for (const r of resources) {
      if (!isTypeUrl(r.typeUrl)) throw new Error(`a snapshot holds no resources of type ${String(r.typeUrl)}`);
      const set = byType.get(r.typeUrl) as Map<string, CachedResource>;
      if (set.has(r.name)) throw new Error(`two ${TYPE_LABELS[r.typeUrl]}s are named ${r.name}`);
      set.set(r.name, r);
    }
    for (const [typeUrl, set] of byType) {
      const sorted = [...set.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      this.#types.set(typeUrl, { version: hash(sorted.flatMap((r) => [r.name, '\0', r.version, '\n'])), resources: set });
    }
  }

  version(typeUrl: TypeUrl): string {
    return this.#typeSet(typeUrl).version;
  }

  resources(typeUrl: TypeUrl): ReadonlyMap<string, CachedResource> {
    return this.#typeSet(typeUrl).resources;
  }

  /** Every resource, in push order. */
  all(): CachedResource[] {
    return PUSH_ORDER.flatMap((t) => [...this.resources(t).values()]);
  }

  /** Each reference of a resource to one that the snapshot does not hold, in words. */
  inconsistencies(): string[] {
    const problems: string[] = [];
    for (const r of this.all()) {
      for (const [typeUrl, names] of r.references) {
        const present = this.resources(typeUrl);
        for (const name of names) {
          if (!present.has(name)) problems.push(`${TYPE_LABELS[r.typeUrl]} ${r.name} names ${TYPE_LABELS[typeUrl]} ${name}, which it does not hold`);
        }
      }
    }
    return problems;
  }

  #typeSet(typeUrl: TypeUrl): TypeSet {
    const set = this.#types.get(typeUrl);
    if (!set) throw new Error(`a snapshot holds no resources of type ${typeUrl}`);
    return set;
  }
}
