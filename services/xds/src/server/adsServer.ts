import { Server, ServerCredentials, status, type ServerDuplexStream } from '@grpc/grpc-js';
import type { Logger } from '@paddock/telemetry';
import type { ConfigWatcher } from '../cache/watch.js';
import type { EnvoyProtos } from '../protos/envoyProtos.js';
import { AdsStreamError, type AdsStream, type StreamContext } from './adsStream.js';
import { DeltaStream } from './deltaStream.js';
import { AdsCodec, type DeltaDiscoveryRequest, type DeltaDiscoveryResponse, type DiscoveryRequest, type DiscoveryResponse } from './messages.js';
import { SotwStream } from './sotwStream.js';
import type { AdsObserver, StreamStatus, TypeProgress } from './streamStatus.js';

export interface AdsServerOptions {
  readonly host: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
  readonly watcher: ConfigWatcher;
  readonly protos: EnvoyProtos;
  readonly log: Logger;
  readonly observer?: AdsObserver;
  /** control_plane.identifier of every response. */
  readonly identifier?: string;
}

/** The server could not listen: the address is taken, or not this host's. */
export class AdsListenError extends Error {
  constructor(
    readonly host: string,
    readonly port: number,
    options: ErrorOptions,
  ) {
    super(`xDS cannot listen on ${host}:${port} (PADDOCK_XDS_HOST, PADDOCK_XDS_PORT): ${(options.cause as Error | undefined)?.message ?? 'bind failed'}`, options);
    this.name = 'AdsListenError';
  }
}

export interface StartedAdsServer {
  /** `host:port` it listens on. */
  readonly address: string;
  readonly port: number;
  /** Every open stream: its node, and per type what was sent, acknowledged and rejected. */
  status(): StreamStatus[];
  /**
   * Ends every stream (its client reconnects, to this server again or another), then stops; idempotent.
   * Streams never end by themselves, so there is nothing to wait for beyond `graceMs` of writes.
   */
  stop(graceMs?: number): Promise<void>;
}

/** A client that went away mid-write: the stream is already over. */
function isClosedStream(err: unknown): boolean {
  return (err as { code?: string } | undefined)?.code === 'ERR_STREAM_WRITE_AFTER_END' || (err as { code?: string } | undefined)?.code === 'ERR_STREAM_DESTROYED';
}

/**
 * The gRPC AggregatedDiscoveryService (state of the world and delta) over a ConfigWatcher. Each call is a
 * stream object (SotwStream, DeltaStream) fed with the call's requests; the server knows nothing of where
 * configuration comes from.
 */
export async function startAdsServer(options: AdsServerOptions): Promise<StartedAdsServer> {
  const { log, watcher } = options;
  const codec = new AdsCodec(options.protos);
  const streams = new Map<number, { stream: AdsStream<TypeProgress>; call: ServerDuplexStream<unknown, unknown> }>();
  let nextId = 0;

  const context = (): StreamContext => ({
    id: ++nextId,
    watcher,
    log,
    observer: options.observer ?? {},
    controlPlane: options.identifier ?? 'paddock-xds',
    now: Date.now,
  });

  /** Feeds a call's requests to its stream; an AdsStreamError ends the call with its status. */
  function serve<Req, Res>(call: ServerDuplexStream<Req, Res>, stream: AdsStream<TypeProgress> & { onRequest(r: Req): void }): void {
    const id = stream.id;
    const end = (): void => {
      stream.close();
      streams.delete(id);
    };
    streams.set(id, { stream, call: call as ServerDuplexStream<unknown, unknown> });
    call.on('data', (request: Req) => {
      try {
        stream.onRequest(request);
      } catch (err) {
        end();
        if (err instanceof AdsStreamError) {
          log.warn({ stream: id, node: stream.node, code: status[err.code], reason: err.message }, `xDS stream ${id} refused: ${err.message}`);
          call.emit('error', Object.assign(new Error(err.message), { code: err.code, details: err.message }));
        } else {
          log.error({ err, stream: id }, `xDS stream ${id} failed`);
          call.emit('error', Object.assign(new Error('internal error of the control plane'), { code: status.INTERNAL, details: 'internal error of the control plane' }));
        }
      }
    });
    call.on('end', () => {
      end();
      call.end();
    });
    call.on('cancelled', end);
    call.on('error', (err) => {
      end();
      if (!isClosedStream(err)) log.debug({ err, stream: id }, `xDS stream ${id} ended with an error`);
    });
  }

  const writer =
    <Res>(call: ServerDuplexStream<unknown, Res>) =>
    (response: Res): void => {
      if (call.writableEnded || call.destroyed) return;
      try {
        call.write(response);
      } catch (err) {
        // One stream that cannot be written ends alone: the snapshot is still pushed to every other.
        log.error({ err }, 'an xDS response could not be written; the stream ends');
        call.emit('error', Object.assign(new Error('internal error of the control plane'), { code: status.INTERNAL, details: 'internal error of the control plane' }));
      }
    };

  const server = new Server({
    // Notice a client that vanished (a host gone, a cable cut) within a minute, and drop its watches.
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 20_000,
  });
  server.addService(codec.serviceDefinition(), {
    StreamAggregatedResources: (call: ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) => {
      const stream = new SotwStream(context(), writer(call as ServerDuplexStream<unknown, DiscoveryResponse>));
      serve(call, stream);
    },
    DeltaAggregatedResources: (call: ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>) => {
      const stream = new DeltaStream(context(), writer(call as ServerDuplexStream<unknown, DeltaDiscoveryResponse>));
      serve(call, stream);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${options.host}:${options.port}`, ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(new AdsListenError(options.host, options.port, { cause: err })) : resolve(bound),
    ),
  );
  const address = `${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`;
  log.info({ address }, `xDS (ADS) served at ${address}`);

  let stopped: Promise<void> | undefined;
  return {
    address,
    port,
    status: () => [...streams.values()].flatMap(({ stream }) => stream.status() ?? []),
    stop: (graceMs = 2_000) =>
      (stopped ??= (async () => {
        for (const { stream, call } of [...streams.values()]) {
          stream.close();
          call.end();
        }
        streams.clear();
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, graceMs);
          server.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        });
      })()),
  };
}
