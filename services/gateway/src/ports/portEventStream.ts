import type { ServerResponse } from 'node:http';
import { topics, type Bus, type Subscription } from '@paddock/bus';
import { ExecutionState, type PortChanged } from '@paddock/proto';
import type { Logger } from '@paddock/telemetry';
import { portViews, type PortView } from './openPorts.js';
import type { PortUrls } from './portUrls.js';
import type { VisibilityMap } from './portVisibilityStore.js';

const FINAL = new Set([ExecutionState.EXECUTION_STATE_COMPLETED, ExecutionState.EXECUTION_STATE_FAILED, ExecutionState.EXECUTION_STATE_CANCELLED]);

/**
 * A client that has not read this much of the stream is not reading it: it is cut rather than buffered
 * for without end (it can open the stream again and gets the whole state first).
 */
const UNREAD_MAX_BYTES = 1024 * 1024;

export interface PortEventStreamOptions {
  readonly bus: Bus;
  readonly instanceId: string;
  /** The instance's state as it is now: final, or not yet. Read after the stream listens, so no end is missed. */
  readonly isFinal: () => Promise<boolean>;
  /** The instance's last port event, read after the stream listens. */
  readonly lastEvent: () => Promise<PortChanged | null>;
  readonly visibility: () => Promise<VisibilityMap>;
  readonly urls: PortUrls;
  /** How often a comment line keeps proxies and clients from taking a quiet stream for a dead one. */
  readonly heartbeatMs: number;
  readonly log: Logger;
}

/** What arrives on the bus before the current state is sent: applied in order right after it. */
type Pending = { kind: 'port'; event: PortChanged } | { kind: 'visibility'; map: VisibilityMap } | { kind: 'final' };

/**
 * An instance's ports as Server-Sent Events on `res`: `event: ports` with every open port first (and
 * again when a port's visibility changes), then `event: opened` / `event: closed` with the port that
 * changed and every port open after it, and `event: end` when the instance ends, after which the response
 * ends. Every `data` is one JSON object. `: heartbeat` comments come every `heartbeatMs`.
 *
 * Returns the function that ends the stream early (the gateway stopping).
 */
export async function streamPortEvents(res: ServerResponse, opts: PortEventStreamOptions): Promise<() => void> {
  const { bus, instanceId, urls } = opts;
  const subs: Subscription[] = [];
  const pending: Pending[] = [];
  let live = false;
  let ended = false;
  let seq = 0;
  let last: PortChanged | null = null;
  let visibility: VisibilityMap = new Map();
  let heartbeat: NodeJS.Timeout | undefined;

  const send = (event: string, data: object) => {
    if (ended || res.destroyed) return;
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    if (res.writableLength > UNREAD_MAX_BYTES) {
      opts.log.info({ instanceId, unreadBytes: res.writableLength }, 'port event stream cut: the client does not read it');
      res.destroy();
    }
  };
  const ports = (): PortView[] => portViews(instanceId, last, visibility, urls);
  const stop = () => {
    clearInterval(heartbeat);
    for (const s of subs.splice(0)) s.stop().catch(() => {});
  };
  const end = (reason: string) => {
    if (ended) return;
    send('end', { reason });
    ended = true;
    stop();
    res.end();
  };

  const apply = (p: Pending) => {
    if (ended) return;
    if (p.kind === 'final') return end('the instance ended');
    if (p.kind === 'visibility') {
      visibility = p.map;
      return send('ports', { ports: ports() });
    }
    // Each event carries the whole state, so one missed in between costs nothing; an older one is stale.
    if (p.event.seq <= seq) return;
    seq = p.event.seq;
    last = p.event;
    const changed = p.event.instanceEnded ? 'closed' : p.event.open.some((l) => l.port === p.event.port) ? 'opened' : 'closed';
    send(changed, { port: p.event.port, ports: ports() });
  };
  const arrive = (p: Pending) => (live ? apply(p) : pending.push(p));

  res.once('close', () => {
    ended = true;
    stop();
  });
  try {
    subs.push(
      bus.subscribe(topics.portOpened, instanceId, ({ message }) => arrive({ kind: 'port', event: message })),
      bus.subscribe(topics.portClosed, instanceId, ({ message }) => arrive({ kind: 'port', event: message })),
      bus.subscribe(topics.portVisibility, instanceId, ({ message }) => arrive({ kind: 'visibility', map: visibilityMapOf(message.visibility) })),
      bus.subscribe(topics.executionState, instanceId, ({ message }) => {
        if (FINAL.has(message.state)) arrive({ kind: 'final' });
      }),
    );
    // The subscriptions are in place at the server once it has answered a round trip: what is read below
    // is then at least as new as anything they will miss.
    await bus.nc.flush();
    const [final, event, map] = await Promise.all([opts.isFinal(), opts.lastEvent(), opts.visibility()]);
    visibility = map;
    if (!final && event) {
      last = event;
      seq = event.seq;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // nginx and the like would hold events back to fill a buffer.
      'x-accel-buffering': 'no',
    });
    send('ports', { ports: ports() });
    live = true;
    if (final) {
      end('the instance ended');
      return () => {};
    }
    for (const p of pending.splice(0)) apply(p);
    heartbeat = setInterval(() => {
      if (!ended && !res.destroyed) res.write(': heartbeat\n\n');
    }, opts.heartbeatMs);
  } catch (err) {
    stop();
    throw err;
  }
  return () => end('the gateway is stopping');
}

/** A published visibility map (`port -> visibility`); a port it does not name, or names with anything else, is private. */
function visibilityMapOf(published: Record<number, string>): VisibilityMap {
  const map = new Map<number, 'project' | 'public'>();
  for (const [port, v] of Object.entries(published)) {
    if (v === 'project' || v === 'public') map.set(Number(port), v);
  }
  return map;
}
