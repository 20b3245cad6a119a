// A broker's gRPC face for the gateway's tests: the real Broker service definition, served over mutual
// TLS with the broker's certificate of a plane the test made. Access names the broker, Exec prints it, and
// Relay echoes what it is sent; each call records which plane service made it (by its certificate).
import {
  Server,
  status,
  type sendUnaryData,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServerWritableStream,
} from '@grpc/grpc-js';
import { callerOf, serverCredentials, type ServiceTls } from '@paddock/plane';
import { BrokerService, OutputStream, type AccessReply, type AccessRequest, type ExecOutput, type ExecRequest, type RelayFrame } from '@paddock/proto';

export interface BrokerCall {
  readonly method: 'access' | 'exec' | 'relay';
  readonly executionId: string;
  /** The plane service whose certificate made the call. */
  readonly caller: string | undefined;
}

export interface BrokerStandIn {
  readonly name: string;
  /** `127.0.0.1:<port>`, as its heartbeat announces it. */
  readonly address: string;
  readonly calls: BrokerCall[];
  stop(): Promise<void>;
}

export async function startBrokerStandIn(tls: ServiceTls, name: string): Promise<BrokerStandIn> {
  const calls: BrokerCall[] = [];
  const refuse = (_call: unknown, cb: sendUnaryData<never>) => cb({ code: status.UNIMPLEMENTED, details: `${name} does not launch` });
  const server = new Server();
  server.addService(BrokerService, {
    launch: refuse,
    cancel: refuse,
    access: (call: ServerUnaryCall<AccessRequest, AccessReply>, cb: sendUnaryData<AccessReply>) => {
      calls.push({ method: 'access', executionId: call.request.executionId, caller: callerOf(call) });
      cb(null, { username: name, password: 'not-a-secret' });
    },
    exec: (call: ServerWritableStream<ExecRequest, ExecOutput>) => {
      calls.push({ method: 'exec', executionId: call.request.executionId, caller: callerOf(call) });
      call.write({ stream: OutputStream.OUTPUT_STREAM_STDOUT, data: Buffer.from(`${name} ran ${call.request.cmd.join(' ')}`), exitCode: undefined });
      call.write({ stream: OutputStream.OUTPUT_STREAM_STDOUT, data: Buffer.alloc(0), exitCode: 0 });
      call.end();
    },
    relay: (call: ServerDuplexStream<RelayFrame, RelayFrame>) => {
      let opened = false;
      call.on('data', (frame: RelayFrame) => {
        if (!opened && frame.open) {
          opened = true;
          calls.push({ method: 'relay', executionId: frame.open.executionId, caller: callerOf(call) });
          // The broker's first frame says the connection inside is open.
          call.write({ open: undefined, data: Buffer.alloc(0), eof: false });
        }
        if (frame.data.length > 0) call.write({ open: undefined, data: Buffer.from(frame.data), eof: false });
        if (frame.eof) call.end();
      });
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', serverCredentials(tls), (err, p) => (err ? reject(err) : resolve(p))));
  let stopped: Promise<void> | undefined;
  return {
    name,
    address: `127.0.0.1:${port}`,
    calls,
    // forceShutdown: a stopped broker drops its connections, as a killed process would.
    stop: () => (stopped ??= Promise.resolve(server.forceShutdown())),
  };
}
