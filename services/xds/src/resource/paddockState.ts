import { isIP } from 'node:net';

/** An IP address and a TCP port: what an endpoint is (Envoy's EDS and gRPC's take IP addresses only). */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/**
 * Who may open a port's URL: its owner's callers (`private`), the members of the instance's project
 * (`project`), or anyone who has it (`public`). The gateway decides who is who; xds only carries it.
 */
export type PortVisibility = 'private' | 'project' | 'public';
export const PORT_VISIBILITIES: readonly PortVisibility[] = ['private', 'project', 'public'];

export interface BrokerState {
  readonly id: string;
  /** Where its gRPC API (Relay RPC included) is served: the gRPC clients' and the gateway ingress's endpoint. */
  readonly grpc: HostPort;
  /** Where its relay takes HTTP (the headers of the edge routes), for Envoy; null while it announces none. */
  readonly relay: HostPort | null;
}

export interface OpenPort {
  readonly port: number;
  readonly visibility: PortVisibility;
}

export interface InstanceState {
  /** The execution id: what the broker's Relay takes, and the `{id}` of its URLs. */
  readonly id: string;
  readonly brokerId: string;
  /** By port number. */
  readonly ports: ReadonlyMap<number, OpenPort>;
}

/** Everything resources are built from. Plain data: the builders are pure functions of it. */
export interface PaddockState {
  readonly brokers: ReadonlyMap<string, BrokerState>;
  readonly instances: ReadonlyMap<string, InstanceState>;
}

export const EMPTY_STATE: PaddockState = Object.freeze({ brokers: new Map(), instances: new Map() });

/** An address a broker announced that is not `host:port` with an IP literal and a port in 1-65535. */
export class AddressError extends Error {
  constructor(
    readonly address: string,
    reason: string,
  ) {
    super(`"${address}" is not an address an endpoint can have: ${reason}`);
    this.name = 'AddressError';
  }
}

/**
 * `host:port` (`[v6]:port` for IPv6) split. The host may be a name; `isIP(host)` says whether it must be
 * resolved before it can be an endpoint.
 */
export function parseHostPort(address: string): HostPort {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address.trim());
  if (!m) throw new AddressError(address, 'expected host:port, or [IPv6]:port');
  const host = (m[1] ?? m[2]) as string;
  const port = Number(m[3]);
  if (port < 1 || port > 65_535) throw new AddressError(address, `port ${port} is outside 1-65535`);
  if (m[1] !== undefined && isIP(host) !== 6) throw new AddressError(address, `${host} is not an IPv6 address`);
  return { host, port };
}
