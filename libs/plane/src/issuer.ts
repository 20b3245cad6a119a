// Certificates are made in-process with @peculiar/x509 over Node's WebCrypto rather than by running the
// openssl command: `paddock up` then needs no binary beyond Node (slim images, macOS's LibreSSL lacks
// options OpenSSL 3 has), and every failure is an exception here rather than a parsed stderr. The
// library needs a Reflect polyfill (its dependency injection): this module loads both, and only
// ensurePki imports it (lazily), so the services, which only read certificates, never load either.
import 'reflect-metadata';
import { createPrivateKey, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import { spiffeId, type PlaneService } from './planeServices.js';

const EC_KEY = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
export const CA_NAME = 'CN=Paddock plane CA,O=Paddock';

interface Validity {
  readonly notBefore: Date;
  readonly notAfter: Date;
}

async function keyPair(keyPem: string): Promise<webcrypto.CryptoKeyPair> {
  const key = createPrivateKey(keyPem);
  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  return {
    privateKey: await webcrypto.subtle.importKey('pkcs8', pkcs8, EC_KEY, false, ['sign']),
    publicKey: await webcrypto.subtle.importKey('spki', spki, EC_KEY, true, ['verify']),
  };
}

/** A positive 128-bit serial, as RFC 5280 asks (unique per CA; random makes two racing issuers differ). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex');
}

/** The CA certificate (self-signed) of the plane's CA key: may sign end-entity certificates only. */
export async function issueCaCert(caKeyPem: string, validity: Validity): Promise<string> {
  const keys = await keyPair(caKeyPem);
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serialNumber(),
      name: CA_NAME,
      ...validity,
      signingAlgorithm: SIGNING,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
      ],
    },
    webcrypto,
  );
  return cert.toString('pem');
}

/**
 * A service's certificate, for both ends of a TLS connection: CN and the SPIFFE URI name the service (what
 * a peer authorizes by), and the DNS names and IP addresses of `hosts` let it serve under those names too.
 */
export async function issueServiceCert(opts: {
  service: PlaneService;
  hosts: readonly string[];
  keyPem: string;
  caCertPem: string;
  caKeyPem: string;
  validity: Validity;
}): Promise<string> {
  const subject = await keyPair(opts.keyPem);
  const ca = await keyPair(opts.caKeyPem);
  const caCert = new x509.X509Certificate(opts.caCertPem);
  const names: x509.JsonGeneralName[] = [{ type: 'url', value: spiffeId(opts.service) }];
  for (const host of opts.hosts) names.push({ type: isIP(host) ? 'ip' : 'dns', value: host });
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serialNumber(),
      subject: `CN=${opts.service},O=Paddock`,
      issuer: caCert.subjectName,
      ...opts.validity,
      signingAlgorithm: SIGNING,
      publicKey: subject.publicKey,
      signingKey: ca.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension(names),
        await x509.SubjectKeyIdentifierExtension.create(subject.publicKey, false, webcrypto),
        await x509.AuthorityKeyIdentifierExtension.create(ca.publicKey, false, webcrypto),
      ],
    },
    webcrypto,
  );
  return cert.toString('pem');
}
