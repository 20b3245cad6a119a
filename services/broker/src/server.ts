import { type Metadata, Server, ServerCredentials, status, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData } from '@grpc/grpc-js';
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

/** The broker's gRPC API (proto/paddock/v1/instance.proto, service Broker). */
export async function startGrpcServer(
  instances: InstanceManager,
  opts: { host: string; port: number; log: Logger },
): Promise<{ address: string; stop(): Promise<void> }> {
  const server = new Server();
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
    server.bindAsync(`${opts.host}:${opts.port}`, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
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
