import {
  Metadata,
  Server,
  ServerInterceptingCall,
  status,
  type ServerInterceptor,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
} from '@grpc/grpc-js';
import { callerOf, serverCredentials, type PlaneService, type ServiceTls } from '@paddock/plane';
import { BrokerService, type BrokerServer, type ExecOutput, type ExecRequest } from '@paddock/proto';
import { extractContext, withSpan, type Carrier, type Logger } from '@paddock/telemetry';
import type { InstanceManager } from './lifecycle/instanceManager.js';
import { LaunchError } from './lifecycle/launchError.js';
import { relayCall } from './relay/relayCall.js';
import { isUnavailable } from './unavailable.js';

function metadataCarrier(md: Metadata): Carrier {
  return {
    get: (key) => {
      const v = md.get(key)[0];
      return v === undefined ? undefined : String(v);
    },
    set: (key, value) => md.set(key, value),
  };
}

function unary<Req, Res>(
  name: string,
  log: Logger,
  fn: (req: Req) => Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    const parent = extractContext(metadataCarrier(call.metadata));
    const executionId = (call.request as { executionId?: string }).executionId ?? '';
    withSpan(`broker.${name}`, { 'paddock.execution_id': executionId }, () => fn(call.request), parent).then(
      (res) => callback(null, res),
      (err: unknown) => {
        if (err instanceof LaunchError) return callback({ code: err.code, details: err.details });
        // PostgreSQL or NATS briefly away: the caller tries again.
        if (isUnavailable(err)) return callback({ code: status.UNAVAILABLE, details: err.message });
        log.error({ err, executionId }, `${name} failed`);
        callback({ code: status.INTERNAL, details: (err as Error).message });
      },
    );
  };
}

/**
 * Which services may call each method of the Broker service: the scheduler places, launches and cancels
 * executions; the gateway reaches into running ones for its users (SSH details, a command, a port). Keyed
 * by the generated service, so a method added to the proto does not compile until it is given its callers.
 */
export const BROKER_CALLERS: { readonly [M in keyof typeof BrokerService]: readonly PlaneService[] } = {
  launch: ['scheduler'],
  cancel: ['scheduler'],
  access: ['gateway'],
  exec: ['gateway'],
  relay: ['gateway'],
};

const CALLERS_BY_PATH = new Map<string, readonly PlaneService[]>(
  (Object.keys(BROKER_CALLERS) as (keyof typeof BrokerService)[]).map((m) => [BrokerService[m].path, BROKER_CALLERS[m]]),
);

/**
 * Every call is checked before its handler runs, whatever its kind (unary, streaming, both ways): the
 * caller is the service its certificate names (the TLS handshake already proved the certificate is the
 * plane CA's), and it must be one the method allows.
 */
function authorize(log: Logger): ServerInterceptor {
  return (method, call) =>
    new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, pass) => {
            const caller = callerOf(call);
            const allowed = CALLERS_BY_PATH.get(method.path) ?? [];
            if (caller !== undefined && allowed.includes(caller)) return pass(metadata);
            const who = caller ?? 'a caller whose certificate names no Paddock service';
            const details = `${who} may not call ${method.path}; it is for ${allowed.join(', ') || 'no service'}`;
            log.warn({ caller: caller ?? null, method: method.path }, 'call refused');
            call.sendStatus({ code: status.PERMISSION_DENIED, details, metadata: new Metadata() });
          },
        }),
    });
}

/**
 * The broker's gRPC API (proto/paddock/v1/instance.proto, service Broker), over mutual TLS only: a client
 * must show a certificate of the plane's CA, and each method answers only the services BROKER_CALLERS names.
 */
export async function startGrpcServer(
  instances: InstanceManager,
  opts: { host: string; port: number; log: Logger; tls: ServiceTls },
): Promise<{ address: string; stop(): Promise<void> }> {
  const server = new Server({ interceptors: [authorize(opts.log)] });
  const impl: BrokerServer = {
    launch: unary('Launch', opts.log, (req) => instances.launch(req)),
    cancel: unary('Cancel', opts.log, async (req) => ({ found: await instances.cancel(req.executionId, req.graceMs) })),
    access: unary('Access', opts.log, (req) => instances.access(req.executionId)),
    relay: relayCall((executionId, port) => instances.reachPort(executionId, port), opts.log),
    exec: (call: ServerWritableStream<ExecRequest, ExecOutput>) => {
      const parent = extractContext(metadataCarrier(call.metadata));
      const executionId = call.request.executionId;
      // A caller that goes away (cancels, disconnects) ends the command: nobody would read what it writes.
      const gone = new AbortController();
      call.once('cancelled', () => gone.abort());
      call.once('close', () => gone.abort());
      const whenGone = new Promise<void>((resolve) => gone.signal.addEventListener('abort', () => resolve(), { once: true }));
      withSpan('broker.Exec', { 'paddock.execution_id': executionId }, async () => {
        for await (const out of instances.exec(call.request, gone.signal)) {
          if (gone.signal.aborted) return;
          // The caller reads slower than the command writes: wait until gRPC's buffer drains, so the
          // command's output stays in the engine's pipe (which blocks the command) instead of in memory here.
          if (!call.write(out)) await Promise.race([new Promise((resolve) => call.once('drain', resolve)), whenGone]);
        }
      }, parent).then(
        () => {
          if (!gone.signal.aborted) call.end();
        },
        (err: unknown) => {
          if (err instanceof LaunchError) return call.destroy(Object.assign(new Error(err.details), { code: err.code, details: err.details }));
          if (isUnavailable(err)) return call.destroy(Object.assign(new Error(err.message), { code: status.UNAVAILABLE, details: err.message }));
          opts.log.error({ err, executionId }, 'Exec failed');
          call.destroy(Object.assign(new Error((err as Error).message), { code: status.INTERNAL, details: (err as Error).message }));
        },
      );
    },
  };
  server.addService(BrokerService, impl);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${opts.host}:${opts.port}`, serverCredentials(opts.tls), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    address: `${opts.host}:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), 5000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}
