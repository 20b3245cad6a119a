// A broker's gRPC face for the scheduler's tests: the real Broker service definition, served over mutual
// TLS with the broker's certificate of a plane the test made, answering Launch and Cancel and recording
// which plane service made each call (by the certificate it showed).
import { Server, status, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { callerOf, serverCredentials, type ServiceTls } from '@paddock/plane';
import { BrokerService, type CancelReply, type CancelRequest, type LaunchReply, type LaunchRequest } from '@paddock/proto';

export interface BrokerCall {
  readonly method: 'launch' | 'cancel';
  readonly executionId: string;
  /** The plane service whose certificate made the call. */
  readonly caller: string | undefined;
}

export interface BrokerStandIn {
  /** `127.0.0.1:<port>`, as its heartbeat announces it. */
  readonly address: string;
  readonly calls: BrokerCall[];
  stop(): Promise<void>;
}

export async function startBrokerStandIn(tls: ServiceTls, name: string): Promise<BrokerStandIn> {
  const calls: BrokerCall[] = [];
  const server = new Server();
  const unimplemented = (_call: unknown, cb: sendUnaryData<never>) => cb({ code: status.UNIMPLEMENTED, details: `${name} answers Launch and Cancel only` });
  server.addService(BrokerService, {
    launch: (call: ServerUnaryCall<LaunchRequest, LaunchReply>, cb: sendUnaryData<LaunchReply>) => {
      calls.push({ method: 'launch', executionId: call.request.executionId, caller: callerOf(call) });
      cb(null, { containerId: `${name}-${call.request.executionId}`, startedAtMs: Date.now() });
    },
    cancel: (call: ServerUnaryCall<CancelRequest, CancelReply>, cb: sendUnaryData<CancelReply>) => {
      calls.push({ method: 'cancel', executionId: call.request.executionId, caller: callerOf(call) });
      cb(null, { found: true });
    },
    access: unimplemented,
    exec: (call: { emit(event: 'error', err: unknown): void }) => call.emit('error', { code: status.UNIMPLEMENTED }),
    relay: (call: { emit(event: 'error', err: unknown): void }) => call.emit('error', { code: status.UNIMPLEMENTED }),
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', serverCredentials(tls), (err, p) => (err ? reject(err) : resolve(p))));
  let stopped: Promise<void> | undefined;
  return {
    address: `127.0.0.1:${port}`,
    calls,
    // forceShutdown: a stopped broker drops its connections, as a killed process would.
    stop: () => (stopped ??= Promise.resolve(server.forceShutdown())),
  };
}
