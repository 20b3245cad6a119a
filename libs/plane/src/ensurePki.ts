import { X509Certificate, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { LlmKey, SpecKey } from '@paddock/secrets';
import { PlaneError } from './planeError.js';
import { PLANE_SERVICES, serviceOfAltNames, type PlaneService } from './planeServices.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const CA_VALIDITY_MS = 3650 * DAY_MS;
const SERVICE_VALIDITY_MS = 365 * DAY_MS;
/** A certificate this close to its end is reissued, so that one start of Paddock carries it a month at least. */
export const RENEW_BEFORE_MS = 30 * DAY_MS;
/** Backdated, so that a peer whose clock is a little behind does not find a new certificate not yet valid. */
const BACKDATE_MS = 5 * 60 * 1000;

export interface PkiOptions {
  /** The services to make a certificate for; all of PLANE_SERVICES by default. */
  readonly services?: readonly PlaneService[];
  /** DNS names and IP addresses every service certificate is valid for as a server; defaultPlaneHosts() by default. */
  readonly hosts?: readonly string[];
}

export interface PlaneFiles {
  readonly dir: string;
  readonly caFile: string;
  readonly caKeyFile: string;
  /** The key the gateway seals specs with and the broker opens them with (see @paddock/secrets' SpecKey). */
  readonly specKeyFile: string;
  /** The gateway's and billing's key for LLM provider keys (LlmKey). */
  readonly llmKeyFile: string;
  readonly services: Readonly<Partial<Record<PlaneService, { readonly certFile: string; readonly keyFile: string }>>>;
  /** What this call (re)issued, each with why: `ca.crt: missing`, `broker.crt: expires within 30 days`. Empty when all was in order. */
  readonly issued: readonly string[];
}

/** This machine's loopback names and its hostname. */
export function defaultPlaneHosts(): string[] {
  return [...new Set(['localhost', '127.0.0.1', '::1', hostname().toLowerCase()])];
}

/**
 * The plane's CA, a certificate and key per service, and the spec key, in `dir`, made at the first call and kept after:
 * a certificate that is missing, does not match its key, was not issued by the CA in `dir`, does not name
 * its service or a host asked for, or expires within 30 days is issued again (with the same key). Keys are
 * never replaced, so a running service's key stays valid; remove a key (and its certificate) to rotate it.
 *
 * Safe when several processes call it at once: a key is written aside and linked into place, which fails
 * for all but the first (the others read that one); a certificate is written aside and renamed over, so
 * a reader sees a whole file, and whichever of two racing issuers wins, its certificate is valid for the
 * same key and CA.
 */
export async function ensurePki(dir: string, opts: PkiOptions = {}): Promise<PlaneFiles> {
  const services = opts.services ?? PLANE_SERVICES;
  const hosts = opts.hosts ?? defaultPlaneHosts();
  for (const host of hosts) {
    if (host === '' || /[\s,]/.test(host)) throw new PlaneError(dir, `"${host}" is not a host name or IP address for a certificate`);
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Loaded here only: the services, which read certificates but never issue them, do not load the library.
  const { issueCaCert, issueServiceCert } = await import('./issuer.js');
  const issued: string[] = [];
  const now = Date.now();
  const validity = (ms: number) => ({ notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + ms) });

  const caKeyFile = join(dir, 'ca.key');
  const caFile = join(dir, 'ca.crt');
  const caKey = await ensureKey(caKeyFile);
  let caCert = await readCertificate(caFile);
  const caProblem = problemOfCa(caCert, caKey.key, now);
  if (caCert === undefined || caProblem !== undefined) {
    const pem = await issueCaCert(caKey.pem, validity(CA_VALIDITY_MS));
    await replaceFile(caFile, pem, 0o644);
    caCert = new X509Certificate(pem);
    issued.push(`ca.crt: ${caProblem}`);
  }

  const files: Partial<Record<PlaneService, { certFile: string; keyFile: string }>> = {};
  for (const service of services) {
    const keyFile = join(dir, `${service}.key`);
    const certFile = join(dir, `${service}.crt`);
    const key = await ensureKey(keyFile);
    const problem = problemOfServiceCert(await readCertificate(certFile), { service, hosts, key: key.key, ca: caCert, now });
    if (problem !== undefined) {
      const pem = await issueServiceCert({ service, hosts, keyPem: key.pem, caCertPem: caCert.toString(), caKeyPem: caKey.pem, validity: validity(SERVICE_VALIDITY_MS) });
      await replaceFile(certFile, pem, 0o644);
      issued.push(`${service}.crt: ${problem}`);
    }
    files[service] = { certFile, keyFile };
  }
  // Made here too, before any service starts: the broker only reads it, and must find the gateway's.
  const specKeyFile = join(dir, 'spec-key');
  await SpecKey.fromFile(specKeyFile);
  const llmKeyFile = join(dir, 'llm-key');
  await LlmKey.fromFile(llmKeyFile);
  return { dir, caFile, caKeyFile, specKeyFile, llmKeyFile, services: files, issued };
}

/** The P-256 private key in `file`, made (mode 0600) if there is none; the first of racing makers wins. */
async function ensureKey(file: string): Promise<{ pem: string; key: KeyObject }> {
  let pem = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new PlaneError(file, `cannot be read: ${err.message}`, { cause: err });
  });
  if (pem === undefined) {
    const made = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' });
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(tmp, made, { mode: 0o600, flag: 'wx' });
    try {
      await link(tmp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      await rm(tmp, { force: true });
    }
    pem = await readFile(file, 'utf8');
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new PlaneError(file, 'is not a private key in PEM; remove it, and the certificate made for it, to have a new one made', { cause: err });
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new PlaneError(file, 'is not an ECDSA P-256 key, the only kind the plane issues for; remove it, and the certificate made for it, to have a new one made');
  }
  return { pem, key };
}

/** The certificate in `file`; undefined when there is none or it does not parse (either way it is issued anew). */
async function readCertificate(file: string): Promise<X509Certificate | undefined> {
  try {
    return new X509Certificate(await readFile(file));
  } catch {
    return undefined;
  }
}

async function replaceFile(file: string, content: string, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, content, { mode, flag: 'wx' });
  try {
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

function sameKey(cert: X509Certificate, key: KeyObject): boolean {
  const spki = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });
  return spki(cert.publicKey).equals(spki(createPublicKey(key)));
}

function expiresSoon(cert: X509Certificate, now: number): boolean {
  return new Date(cert.validTo).getTime() - now < RENEW_BEFORE_MS;
}

function problemOfCa(cert: X509Certificate | undefined, key: KeyObject, now: number): string | undefined {
  if (cert === undefined) return 'missing';
  if (!sameKey(cert, key)) return 'not made for ca.key';
  if (!cert.ca) return 'not a CA certificate';
  if (expiresSoon(cert, now)) return 'expires within 30 days';
  return undefined;
}

function problemOfServiceCert(
  cert: X509Certificate | undefined,
  want: { service: PlaneService; hosts: readonly string[]; key: KeyObject; ca: X509Certificate; now: number },
): string | undefined {
  if (cert === undefined) return 'missing';
  if (!sameKey(cert, want.key)) return `not made for ${want.service}.key`;
  if (!cert.checkIssued(want.ca) || !cert.verify(want.ca.publicKey)) return 'not issued by this CA';
  if (expiresSoon(cert, want.now)) return 'expires within 30 days';
  if (serviceOfAltNames(cert.subjectAltName) !== want.service) return `does not name ${want.service}`;
  const missing = want.hosts.find((host) => (isIP(host) ? cert.checkIP(host) : cert.checkHost(host, { subject: 'never' })) === undefined);
  if (missing !== undefined) return `does not name host ${missing}`;
  return undefined;
}
