/** A TCP socket in LISTEN state, as a namespace's socket table lists it. */
export interface Listener {
  readonly port: number;
  /** The bound address in its usual text form: "0.0.0.0", "127.0.0.1", "::", "::1", "fe80::1"... */
  readonly address: string;
  readonly family: 4 | 6;
}

/** `st` of a socket in LISTEN state in /proc/net/tcp (TCP_LISTEN = 10). */
const LISTEN = '0A';

/**
 * The LISTEN sockets of a `/proc/<pid>/net/tcp` (family 4) or `tcp6` (family 6) text. Each line is
 * `sl local_address rem_address st ...`, the address in hex as the kernel keeps it in memory (32-bit
 * words in host byte order, little-endian here) and the port in hex, big-endian.
 */
export function parseListeners(text: string, family: 4 | 6): Listener[] {
  const found: Listener[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4 || fields[3] !== LISTEN) continue;
    const local = fields[1] ?? '';
    const colon = local.indexOf(':');
    if (colon < 0) continue;
    const port = parseInt(local.slice(colon + 1), 16);
    const address = family === 4 ? ipv4(local.slice(0, colon)) : ipv6(local.slice(0, colon));
    if (!Number.isInteger(port) || address === undefined) continue;
    found.push({ port, address, family });
  }
  return found;
}

/** Four bytes of one little-endian 32-bit word, in network order. */
function wordBytes(hex: string): number[] {
  const bytes = [];
  for (let i = 6; i >= 0; i -= 2) bytes.push(parseInt(hex.slice(i, i + 2), 16));
  return bytes;
}

function ipv4(hex: string): string | undefined {
  if (!/^[0-9A-Fa-f]{8}$/.test(hex)) return undefined;
  return wordBytes(hex).join('.');
}

function ipv6(hex: string): string | undefined {
  if (!/^[0-9A-Fa-f]{32}$/.test(hex)) return undefined;
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) bytes.push(...wordBytes(hex.slice(w * 8, w * 8 + 8)));
  // An IPv4-mapped address (::ffff:a.b.c.d) is shown as such.
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return `::ffff:${bytes.slice(12).join('.')}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  return compressIpv6(groups);
}

/** RFC 5952: the longest run of two or more zero groups becomes "::", hex in lowercase. */
function compressIpv6(groups: number[]): string {
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLength < 2) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** How widely a listener accepts connections: the unspecified address first, then others, loopback last. */
function reach(address: string): number {
  if (address === '0.0.0.0' || address === '::') return 2;
  if (address === '127.0.0.1' || address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.')) return 0;
  return 1;
}

/**
 * One listener per port: a port is open while any socket listens on it, in either family, and the one
 * shown is the widest (a server on both 127.0.0.1:8000 and 0.0.0.0:8000 is reachable from everywhere the
 * wider one is). Ordered by port.
 */
export function byPort(listeners: readonly Listener[]): Map<number, Listener> {
  const ports = new Map<number, Listener>();
  for (const l of listeners) {
    const seen = ports.get(l.port);
    if (seen === undefined || reach(l.address) > reach(seen.address) || (reach(l.address) === reach(seen.address) && l.family < seen.family)) {
      ports.set(l.port, l);
    }
  }
  return new Map([...ports].sort(([a], [b]) => a - b));
}
