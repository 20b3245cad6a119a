import { ConfigError } from '@paddock/errors';

/**
 * One of Paddock's own services, offered inside every running instance at a fixed loopback address:
 * a process of the instance connects to 127.0.0.1:<port> and reaches the unix socket on the broker's host.
 * The LLM metering proxy, the egress proxy (3128) and the run's callback API are such endpoints.
 */
export interface RelayEndpoint {
  /** Short name, for logs and for the reason of a failure. */
  readonly name: string;
  /** Where it appears inside the instance (127.0.0.1:<port>). */
  readonly port: number;
  /** The unix socket on the broker's host that each connection is relayed to. */
  readonly socketPath: string;
}

/**
 * The endpoints from a setting such as `PADDOCK_RELAY_ENDPOINTS`: `name=port:/path/to.sock`, separated by
 * commas. Rejected with a ConfigError that names the entry when it does not parse or repeats a port.
 */
export function parseRelayEndpoints(setting: string, value: string): readonly RelayEndpoint[] {
  const endpoints: RelayEndpoint[] = [];
  for (const entry of value.split(',').map((e) => e.trim()).filter((e) => e !== '')) {
    const match = /^([a-z][a-z0-9-]*)=([0-9]{1,5}):(\/\S+)$/.exec(entry);
    const port = Number(match?.[2]);
    if (!match || port < 1 || port > 65535) throw new ConfigError(setting, `"${entry}" is not name=port:/absolute/socket/path (port 1-65535)`);
    if (endpoints.some((e) => e.port === port)) throw new ConfigError(setting, `port ${port} is given twice`);
    endpoints.push(Object.freeze({ name: match[1]!, port, socketPath: match[3]! }));
  }
  return Object.freeze(endpoints);
}
