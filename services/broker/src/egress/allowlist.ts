import { EgressRuleError } from './errors.js';

/** The ports an entry without one allows: plain HTTP and HTTPS. */
const DEFAULT_PORTS: readonly number[] = [80, 443];

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const HOSTNAME = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
const IPV4 = /^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$/;

interface Rule {
  /** A host name or IPv4 address, lowercase; for a wildcard, the domain after `*.`. */
  readonly host: string;
  readonly wildcard: boolean;
  readonly ports: readonly number[];
}

function parseRule(entry: string): Rule {
  const match = /^(.*?)(?::([0-9]{1,5}))?$/.exec(entry.trim().toLowerCase());
  const name = match?.[1] ?? '';
  const port = match?.[2] === undefined ? undefined : Number(match[2]);
  if (port !== undefined && (port < 1 || port > 65535)) throw new EgressRuleError(entry, 'has a port outside 1-65535');
  const wildcard = name.startsWith('*.');
  const host = wildcard ? name.slice(2) : name;
  if (host.length === 0 || host.length > 253) throw new EgressRuleError(entry, 'names no host');
  if (host.includes('*')) throw new EgressRuleError(entry, 'may use "*" only as its first label ("*.domain")');
  const isIp = IPV4.test(host);
  if (!isIp && !HOSTNAME.test(host)) throw new EgressRuleError(entry, 'is not a host name or IPv4 address');
  if (wildcard && (isIp || !host.includes('.'))) throw new EgressRuleError(entry, 'must put "*." before a domain of at least two labels');
  return { host, wildcard, ports: port === undefined ? DEFAULT_PORTS : [port] };
}

/**
 * The hosts one execution may reach through the egress proxy, as its request wrote them: `pypi.org`
 * (ports 80 and 443), `github.com:443` (that port only), `*.npmjs.org` (any subdomain, not npmjs.org
 * itself, as a TLS wildcard certificate would). Names are compared as written, without resolving them: a
 * name that resolves to a host's address does not allow that address, nor the other way round.
 */
export class EgressAllowlist {
  readonly #rules: readonly Rule[];

  /** Throws EgressRuleError naming the first entry that does not parse. */
  constructor(readonly entries: readonly string[]) {
    this.#rules = entries.map(parseRule);
  }

  allows(host: string, port: number): boolean {
    const name = host.toLowerCase().replace(/\.$/, '');
    return this.#rules.some((rule) => rule.ports.includes(port) && (rule.wildcard ? name.endsWith(`.${rule.host}`) : name === rule.host));
  }

  /** The list as a person reads it in a refusal. */
  describe(): string {
    return this.entries.join(', ');
  }
}
