import { X509Certificate, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { commonConfig, EnvReader, type Env } from '@paddock/config';
import { ConfigError } from '@paddock/errors';
import { planeDir, serviceOfAltNames, type PlaneService } from './planeServices.js';

export const TLS_SETTINGS = Object.freeze({ ca: 'PADDOCK_TLS_CA_FILE', cert: 'PADDOCK_TLS_CERT_FILE', key: 'PADDOCK_TLS_KEY_FILE' });

/** Which files a service proves itself with and checks its peers against. */
export interface TlsFiles {
  readonly service: PlaneService;
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

/** A service's certificate, its key and the CA of the plane, read and checked. */
export interface ServiceTls {
  readonly service: PlaneService;
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly notAfter: Date;
}

/**
 * The files of `service`: PADDOCK_TLS_CA_FILE, PADDOCK_TLS_CERT_FILE and PADDOCK_TLS_KEY_FILE, by default
 * those `paddock up` makes in PADDOCK_HOME/plane (ca.crt, <service>.crt, <service>.key).
 */
export function tlsFilesFromEnv(env: Env, service: PlaneService): TlsFiles {
  const read = new EnvReader(env);
  const dir = planeDir(commonConfig(env).home);
  return Object.freeze({
    service,
    caFile: read.string(TLS_SETTINGS.ca, join(dir, 'ca.crt')),
    certFile: read.string(TLS_SETTINGS.cert, join(dir, `${service}.crt`)),
    keyFile: read.string(TLS_SETTINGS.key, join(dir, `${service}.key`)),
  });
}

async function readSetting(setting: string, file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new ConfigError(
        setting,
        `${file} does not exist. \`paddock up\` makes the plane's CA and every service's certificate and key at its first start ` +
          `(in PADDOCK_HOME/plane); a service run on its own needs ${TLS_SETTINGS.ca}, ${TLS_SETTINGS.cert} and ${TLS_SETTINGS.key} pointing at its files`,
      );
    }
    throw new ConfigError(setting, `${file} cannot be read: ${(err as Error).message}`);
  }
}

/**
 * Reads a service's files and checks them before anything listens or dials: a peer would only report a
 * failed handshake, while here the error names the file and what is wrong with it.
 */
export async function loadServiceTls(files: TlsFiles, nowMs = Date.now()): Promise<ServiceTls> {
  // One after the other, so that of several missing files the same one is named every time.
  const ca = await readSetting(TLS_SETTINGS.ca, files.caFile);
  const cert = await readSetting(TLS_SETTINGS.cert, files.certFile);
  const key = await readSetting(TLS_SETTINGS.key, files.keyFile);
  const caCert = parseCertificate(TLS_SETTINGS.ca, files.caFile, ca);
  const ownCert = parseCertificate(TLS_SETTINGS.cert, files.certFile, cert);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new ConfigError(TLS_SETTINGS.key, `${files.keyFile} is not a private key in PEM`);
  }
  const spki = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });
  if (!spki(ownCert.publicKey).equals(spki(createPublicKey(privateKey)))) {
    throw new ConfigError(TLS_SETTINGS.key, `${files.keyFile} is not the key of the certificate in ${files.certFile}`);
  }
  if (!ownCert.checkIssued(caCert) || !ownCert.verify(caCert.publicKey)) {
    throw new ConfigError(
      TLS_SETTINGS.cert,
      `${files.certFile} was not issued by the CA in ${files.caFile}; \`paddock up\` reissues the certificates of its plane, or use the CA that issued it`,
    );
  }
  const holder = serviceOfAltNames(ownCert.subjectAltName);
  if (holder !== files.service) {
    throw new ConfigError(
      TLS_SETTINGS.cert,
      `${files.certFile} is ${holder === undefined ? 'not the certificate of a Paddock service' : `the certificate of ${holder}`}, and this is the ${files.service}`,
    );
  }
  const notAfter = new Date(ownCert.validTo);
  if (notAfter.getTime() <= nowMs) {
    throw new ConfigError(TLS_SETTINGS.cert, `${files.certFile} expired on ${notAfter.toISOString()}; \`paddock up\` reissues a certificate that expires within 30 days`);
  }
  return Object.freeze({ service: files.service, ca, cert, key, notAfter });
}

function parseCertificate(setting: string, file: string, pem: Buffer): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw new ConfigError(setting, `${file} is not a certificate in PEM`);
  }
}
