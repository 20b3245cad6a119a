import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cachedResource, Snapshot, SnapshotInconsistentError, type CachedResource } from '../src/cache/snapshot.js';
import { SnapshotCache } from '../src/cache/snapshotCache.js';
import { ABSENT, NodeRefusedError, type DeltaResponse, type SotwResponse } from '../src/cache/watch.js';
import { TYPE_URLS, type TypeUrl } from '../src/resource/typeUrls.js';

const G = 'group';

function res(typeUrl: TypeUrl, name: string, content = name, references: [TypeUrl, string[]][] = []): CachedResource {
  return cachedResource({ name, typeUrl, body: new TextEncoder().encode(content), json: { name, content }, references: new Map(references) });
}

const cluster = (name: string, content = name) => res(TYPE_URLS.cluster, name, content, [[TYPE_URLS.loadAssignment, [name]]]);
const endpoints = (name: string, content = name) => res(TYPE_URLS.loadAssignment, name, content);

function cacheWith(...resources: CachedResource[]): SnapshotCache {
  const cache = new SnapshotCache(() => G);
  cache.setSnapshot(G, new Snapshot(resources));
  return cache;
}

/** Collects what a watch is answered with. */
function recorder<T>(): { got: T[]; respond: (r: T) => void } {
  const got: T[] = [];
  return { got, respond: (r) => got.push(r) };
}

test('a snapshot whose references lead nowhere is refused, naming each, and the previous one stays', () => {
  const cache = cacheWith(cluster('a'), endpoints('a'));
  const before = cache.snapshot(G);
  const broken = new Snapshot([
    res(TYPE_URLS.listener, 'l', 'l', [[TYPE_URLS.routeConfiguration, ['r']]]),
    res(TYPE_URLS.routeConfiguration, 'r', 'r', [[TYPE_URLS.cluster, ['a', 'b']]]),
    cluster('a'),
  ]);
  assert.throws(
    () => cache.setSnapshot(G, broken),
    (err: unknown) => {
      assert.ok(err instanceof SnapshotInconsistentError);
      assert.deepEqual(err.problems, [
        'cluster a names load assignment a, which it does not hold',
        'route configuration r names cluster b, which it does not hold',
      ]);
      return true;
    },
  );
  assert.equal(cache.snapshot(G), before);
  assert.throws(() => new Snapshot([cluster('a'), cluster('a', 'other')]), /two clusters are named a/);
});

test('versions are hashes of content: the same resources have the same version, any change a new one', () => {
  const one = new Snapshot([cluster('a'), endpoints('a')]);
  const same = new Snapshot([endpoints('a'), cluster('a')]);
  const changed = new Snapshot([cluster('a'), endpoints('a', 'moved')]);
  assert.equal(one.version(TYPE_URLS.cluster), same.version(TYPE_URLS.cluster));
  assert.equal(one.version(TYPE_URLS.loadAssignment), same.version(TYPE_URLS.loadAssignment));
  assert.equal(one.version(TYPE_URLS.cluster), changed.version(TYPE_URLS.cluster), 'clusters did not change');
  assert.notEqual(one.version(TYPE_URLS.loadAssignment), changed.version(TYPE_URLS.loadAssignment));
});

test('state of the world: answered at once with what the stream lacks, later on a new version, never twice for one version', () => {
  const cache = cacheWith(cluster('a'), endpoints('a'), cluster('b'), endpoints('b'));
  const first = recorder<SotwResponse>();
  cache.watchSotw(G, { typeUrl: TYPE_URLS.cluster, names: 'wildcard', sentVersion: null, answeredNames: new Set() }, first.respond);
  assert.deepEqual(first.got.map((r) => r.resources.map((x) => x.name)), [['a', 'b']]);
  const version = first.got[0]!.version;

  const same = recorder<SotwResponse>();
  cache.watchSotw(G, { typeUrl: TYPE_URLS.cluster, names: 'wildcard', sentVersion: version, answeredNames: new Set(['a', 'b']) }, same.respond);
  assert.equal(same.got.length, 0, 'the stream has this version: the watch waits');
  assert.equal(cache.openWatches(G), 1);

  cache.setSnapshot(G, new Snapshot([cluster('a'), endpoints('a'), cluster('b'), endpoints('b', 'changed')]));
  assert.equal(same.got.length, 0, 'clusters did not change');
  cache.setSnapshot(G, new Snapshot([cluster('a'), endpoints('a')]));
  assert.deepEqual(same.got.map((r) => r.resources.map((x) => x.name)), [['a']], 'the full state: b is gone');
  assert.equal(cache.openWatches(G), 0, 'a watch is answered once');
});

test('state of the world by name: only what exists is sent, and a name newly subscribed is sent at the same version', () => {
  const cache = cacheWith(cluster('a'), endpoints('a'), cluster('b'), endpoints('b'));
  const a = recorder<SotwResponse>();
  cache.watchSotw(G, { typeUrl: TYPE_URLS.loadAssignment, names: new Set(['a', 'missing']), sentVersion: null, answeredNames: new Set() }, a.respond);
  assert.deepEqual(a.got[0]!.resources.map((x) => x.name), ['a']);
  const version = a.got[0]!.version;
  const ab = recorder<SotwResponse>();
  cache.watchSotw(G, { typeUrl: TYPE_URLS.loadAssignment, names: new Set(['a', 'b']), sentVersion: version, answeredNames: new Set(['a']) }, ab.respond);
  assert.deepEqual(ab.got.map((r) => [r.version, r.resources.map((x) => x.name)]), [[version, ['a', 'b']]]);
});

test('clusters and listeners by name: a name that does not exist is answered by leaving it out, once', () => {
  const cache = cacheWith(cluster('a'), endpoints('a'));
  const first = recorder<SotwResponse>();
  cache.watchSotw(G, { typeUrl: TYPE_URLS.cluster, names: new Set(['a']), sentVersion: null, answeredNames: new Set() }, first.respond);
  const version = first.got[0]!.version;
  const gone = recorder<SotwResponse>();
  const request = { typeUrl: TYPE_URLS.cluster, names: new Set(['a', 'gone']), sentVersion: version, answeredNames: first.got[0]!.answered };
  cache.watchSotw(G, request, gone.respond);
  assert.deepEqual(gone.got.map((r) => [r.version, r.resources.map((x) => x.name), [...r.answered]]), [[version, ['a'], ['a', 'gone']]]);
  const again = recorder<SotwResponse>();
  cache.watchSotw(G, { ...request, answeredNames: gone.got[0]!.answered }, again.respond);
  assert.equal(again.got.length, 0, 'said once: the stream waits for a new version');

  const eds = recorder<SotwResponse>();
  cache.watchSotw(G, { typeUrl: TYPE_URLS.loadAssignment, names: new Set(['gone']), sentVersion: null, answeredNames: new Set() }, eds.respond);
  const edsVersion = eds.got[0]!.version;
  const edsAgain = recorder<SotwResponse>();
  cache.watchSotw(G, { typeUrl: TYPE_URLS.loadAssignment, names: new Set(['gone']), sentVersion: edsVersion, answeredNames: eds.got[0]!.answered }, edsAgain.respond);
  assert.equal(edsAgain.got.length, 0, 'endpoints left out say nothing: no response at the same version');
});

test('one snapshot answers watches clusters first, then endpoints, listeners, routes', () => {
  const cache = new SnapshotCache(() => G);
  const order: string[] = [];
  for (const typeUrl of [TYPE_URLS.routeConfiguration, TYPE_URLS.listener, TYPE_URLS.loadAssignment, TYPE_URLS.cluster]) {
    cache.watchSotw(G, { typeUrl, names: 'wildcard', sentVersion: null, answeredNames: new Set() }, (r) => order.push(r.typeUrl));
  }
  assert.deepEqual(order, [], 'no snapshot yet: every watch waits');
  cache.setSnapshot(G, new Snapshot([res(TYPE_URLS.listener, 'l', 'l', [[TYPE_URLS.routeConfiguration, ['r']]]), res(TYPE_URLS.routeConfiguration, 'r'), cluster('a'), endpoints('a')]));
  assert.deepEqual(order, [TYPE_URLS.cluster, TYPE_URLS.loadAssignment, TYPE_URLS.listener, TYPE_URLS.routeConfiguration]);
});

test('a cancelled watch is not answered', () => {
  const cache = new SnapshotCache(() => G);
  const w = recorder<SotwResponse>();
  const cancel = cache.watchSotw(G, { typeUrl: TYPE_URLS.cluster, names: 'wildcard', sentVersion: null, answeredNames: new Set() }, w.respond);
  cancel();
  cancel();
  cache.setSnapshot(G, new Snapshot([cluster('a'), endpoints('a')]));
  assert.equal(w.got.length, 0);
  assert.equal(cache.openWatches(G), 0);
});

test('delta: only what changed is sent, what is gone is removed, a name that does not exist is said once', () => {
  const cache = cacheWith(cluster('a'), endpoints('a'), cluster('b'), endpoints('b'));
  const snapshot = cache.snapshot(G)!;
  const versionOf = (name: string) => snapshot.resources(TYPE_URLS.loadAssignment).get(name)!.version;

  const first = recorder<DeltaResponse>();
  cache.watchDelta(G, { typeUrl: TYPE_URLS.loadAssignment, wildcard: false, subscribed: new Set(['a', 'b', 'c']), known: new Map([['a', versionOf('a')]]) }, first.respond);
  assert.deepEqual(
    first.got.map((r) => [r.resources.map((x) => x.name), r.removed]),
    [[['b'], ['c']]],
    'a is known at its version; c does not exist',
  );

  const known = new Map([
    ['a', versionOf('a')],
    ['b', versionOf('b')],
    ['c', ABSENT],
  ]);
  const next = recorder<DeltaResponse>();
  cache.watchDelta(G, { typeUrl: TYPE_URLS.loadAssignment, wildcard: false, subscribed: new Set(['a', 'b', 'c']), known }, next.respond);
  assert.equal(next.got.length, 0, 'up to date: c is not said again');
  cache.setSnapshot(G, new Snapshot([cluster('a'), endpoints('a', 'moved'), cluster('c'), endpoints('c')]));
  assert.deepEqual(next.got.map((r) => [r.resources.map((x) => x.name).sort(), r.removed]), [[['a', 'c'], ['b']]]);
});

test('delta wildcard: every resource, and removals of those the client has', () => {
  const cache = cacheWith(cluster('a'), endpoints('a'));
  const w = recorder<DeltaResponse>();
  cache.watchDelta(G, { typeUrl: TYPE_URLS.cluster, wildcard: true, subscribed: new Set(), known: new Map([['old', 'v0']]) }, w.respond);
  assert.deepEqual(w.got.map((r) => [r.resources.map((x) => x.name), r.removed]), [[['a'], ['old']]]);
});

test('a node the group function refuses is refused by the cache', () => {
  const cache = new SnapshotCache((node) => {
    throw new NodeRefusedError(`no group for ${node.id}`);
  });
  assert.throws(() => cache.groupOf({ id: 'n', cluster: 'x', userAgentName: '' }), NodeRefusedError);
});
