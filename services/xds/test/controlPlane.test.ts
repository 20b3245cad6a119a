import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SnapshotCache } from '../src/cache/snapshotCache.js';
import { ControlPlane, type StateFeed } from '../src/controlPlane.js';
import { nodeGroupOf } from '../src/resource/names.js';
import type { BrokerState, PaddockState } from '../src/resource/paddockState.js';
import { TYPE_URLS } from '../src/resource/typeUrls.js';
import { eventually, log, protos } from './support.js';

/** A feed the test changes by hand. */
class Feed implements StateFeed {
  #state: PaddockState = { brokers: new Map(), instances: new Map() };
  readonly #listeners = new Set<() => void>();

  state(): PaddockState {
    return this.#state;
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  addBroker(id: string, port: number): void {
    const broker: BrokerState = { id, grpc: { host: '127.0.0.1', port }, relay: null };
    this.#state = { ...this.#state, brokers: new Map([...this.#state.brokers, [id, broker]]) };
    for (const l of this.#listeners) l();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function plane(feed: Feed, cache: SnapshotCache, opts: { debounceMs: number; debounceMaxMs: number; warmupMs: number }, errors: Error[] = []): ControlPlane {
  return new ControlPlane(feed, cache, protos, {
    ...opts,
    snapshot: { baseDomain: 'localhost', edgeListen: { host: '127.0.0.1', port: 8080 } },
    log,
    onError: (e) => errors.push(e),
  });
}

const brokers = (cache: SnapshotCache) => [...(cache.snapshot('paddock-grpc')?.resources(TYPE_URLS.listener).keys() ?? [])];

test('the first configuration waits for the warm-up and holds what came meanwhile', async () => {
  const feed = new Feed();
  const cache = new SnapshotCache(nodeGroupOf);
  const cp = plane(feed, cache, { debounceMs: 10, debounceMaxMs: 50, warmupMs: 300 });
  cp.start();
  try {
    feed.addBroker('b1', 7001);
    await sleep(150);
    assert.equal(cache.snapshot('paddock-grpc'), undefined, 'nothing is served during the warm-up');
    feed.addBroker('b2', 7002);
    await eventually('the first snapshot', () => cache.snapshot('paddock-grpc'), 2_000);
    assert.deepEqual(brokers(cache), ['paddock-broker', 'paddock-broker.b1', 'paddock-broker.b2']);
    assert.equal(cp.builds, 1);
  } finally {
    cp.stop();
  }
});

test('changes that never pause are still pushed, at most debounceMaxMs apart', async () => {
  const feed = new Feed();
  const cache = new SnapshotCache(nodeGroupOf);
  const cp = plane(feed, cache, { debounceMs: 100, debounceMaxMs: 250, warmupMs: 0 });
  cp.start();
  try {
    await eventually('the first snapshot', () => cache.snapshot('paddock-grpc'));
    const startedMs = Date.now();
    for (let i = 0; Date.now() - startedMs < 1_000; i++) {
      feed.addBroker(`b${i}`, 7000 + i);
      await sleep(30);
    }
    const builds = cp.builds - 1;
    assert.ok(builds >= 3 && builds <= 5, `a change every 30 ms for 1 s with a 100 ms debounce capped at 250 ms: ${builds} builds`);
  } finally {
    cp.stop();
  }
});

test('a state that cannot be encoded keeps the previous configuration and is reported', async () => {
  const feed = new Feed();
  const cache = new SnapshotCache(nodeGroupOf);
  const errors: Error[] = [];
  const cp = plane(feed, cache, { debounceMs: 10, debounceMaxMs: 50, warmupMs: 0 }, errors);
  cp.start();
  try {
    feed.addBroker('b1', 7001);
    await eventually('b1', () => (brokers(cache).includes('paddock-broker.b1') ? true : undefined));
    feed.addBroker('b2', -1);
    const [err] = await eventually('the error', () => (errors.length > 0 ? errors : undefined));
    assert.equal(err?.name, 'ProtoJsonError');
    assert.match(err?.message ?? '', /port_value: expected a uint32, got -1/);
    assert.deepEqual(brokers(cache), ['paddock-broker', 'paddock-broker.b1']);
  } finally {
    cp.stop();
  }
});
