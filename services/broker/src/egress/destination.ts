import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

/**
 * Addresses of the broker's host and of private networks. The proxy runs on the broker's host, so an
 * allowed name that resolves to one of these would lead an instance to Paddock's own services (PostgreSQL,
 * NATS, the broker's gRPC) or to the machines around it.
 */
const INTERNAL = new BlockList();
INTERNAL.addSubnet('0.0.0.0', 8, 'ipv4');
INTERNAL.addSubnet('10.0.0.0', 8, 'ipv4');
INTERNAL.addSubnet('100.64.0.0', 10, 'ipv4');
INTERNAL.addSubnet('127.0.0.0', 8, 'ipv4');
INTERNAL.addSubnet('169.254.0.0', 16, 'ipv4');
INTERNAL.addSubnet('172.16.0.0', 12, 'ipv4');
INTERNAL.addSubnet('192.168.0.0', 16, 'ipv4');
INTERNAL.addSubnet('224.0.0.0', 4, 'ipv4');
INTERNAL.addSubnet('::', 128, 'ipv6');
INTERNAL.addSubnet('::1', 128, 'ipv6');
INTERNAL.addSubnet('fc00::', 7, 'ipv6');
INTERNAL.addSubnet('fe80::', 10, 'ipv6');
INTERNAL.addSubnet('ff00::', 8, 'ipv6');

export function isInternalAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  // An IPv4 address written as IPv6 (::ffff:127.0.0.1) is judged as the IPv4 address it is.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped) return INTERNAL.check(mapped, 'ipv4');
  return INTERNAL.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** Where an allowed host may be reached, or why it may not. */
export type Destination = { readonly address: string } | { readonly refused: string };

/**
 * Resolves an allowed host once, here, and picks the address to connect to (so that the name cannot
 * resolve to something else between the check and the connection). Internal addresses are refused unless
 * `allowInternal` (a broker setting for machines where the allowed services are local).
 */
export async function destinationOf(host: string, allowInternal: boolean): Promise<Destination> {
  let addresses: string[];
  try {
    addresses = isIP(host) !== 0 ? [host] : (await lookup(host, { all: true })).map((a) => a.address);
  } catch (err) {
    return { refused: `${host} does not resolve: ${(err as Error).message}` };
  }
  const usable = allowInternal ? addresses : addresses.filter((a) => !isInternalAddress(a));
  if (usable.length === 0) {
    return { refused: `${host} resolves to ${addresses.join(', ')}, an address of this host or of a private network, which egress never reaches` };
  }
  return { address: usable[0]! };
}
