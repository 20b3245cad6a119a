import { join } from 'node:path';

/**
 * Every identity of the internal plane: each has a certificate of its own, so that a server knows which
 * service calls it and can allow each method to the services that need it only. All are Paddock's own
 * services but `edge`, the Envoy an operator runs in front of Paddock: it is no process of Paddock's, yet it
 * proves itself with `edge.crt` to the brokers' HTTP relays, which take no other caller.
 */
export const PLANE_SERVICES = ['gateway', 'scheduler', 'broker', 'portdetect', 'xds', 'billing', 'edge'] as const;

export type PlaneService = (typeof PLANE_SERVICES)[number];

const SPIFFE_PREFIX = 'spiffe://paddock/';

export function isPlaneService(name: string): name is PlaneService {
  return (PLANE_SERVICES as readonly string[]).includes(name);
}

/** The identity a service's certificate carries, as a URI subject alternative name. */
export function spiffeId(service: PlaneService): string {
  return `${SPIFFE_PREFIX}${service}`;
}

/**
 * The service named by the SPIFFE URIs of a certificate's subjectAltName (as Node prints it:
 * `DNS:localhost, URI:spiffe://paddock/broker`), or undefined when it names none, or more than one.
 */
export function serviceOfAltNames(subjectAltName: string | undefined): PlaneService | undefined {
  const services = new Set<PlaneService>();
  for (const uri of altNames(subjectAltName, 'URI')) {
    if (!uri.startsWith(SPIFFE_PREFIX)) continue;
    const name = uri.slice(SPIFFE_PREFIX.length);
    if (isPlaneService(name)) services.add(name);
  }
  return services.size === 1 ? [...services][0] : undefined;
}

/**
 * The values of one kind (`DNS`, `IP Address`, `URI`) in a subjectAltName as Node prints it. Node quotes a
 * value that holds a comma or a quote (as a JSON string), so a crafted name cannot pass for two.
 */
export function altNames(subjectAltName: string | undefined, kind: string): string[] {
  if (!subjectAltName) return [];
  const values: string[] = [];
  const entry = /([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/gy;
  for (let m = entry.exec(subjectAltName); m !== null && m[0] !== ''; m = entry.exec(subjectAltName)) {
    if (m[1] !== kind) continue;
    const raw = m[2] ?? '';
    values.push(raw.startsWith('"') ? (JSON.parse(raw) as string) : raw);
  }
  return values;
}

/** Where `paddock up` keeps the plane: the CA, each service's certificate and key, the spec key. */
export function planeDir(home: string): string {
  return join(home, 'plane');
}

/**
 * The key that seals what an execution's spec carries to the broker (its env values, its repository
 * token): the gateway seals with it, the broker opens with it. Users' stored secrets have a key of their own.
 */
export function specKeyFile(home: string): string {
  return join(planeDir(home), 'spec-key');
}

/**
 * The key that seals an execution's LLM provider keys for billing's metering proxy: the gateway seals with
 * it, billing opens with it; no other service holds it.
 */
export function llmKeyFile(home: string): string {
  return join(planeDir(home), 'llm-key');
}
