import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { copyFile, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { issueServiceCert } from '../src/issuer.js';
import { PLANE_SERVICES, ensurePki, type PlaneFiles, type PlaneService } from '../src/index.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const ENTRY = fileURLToPath(new URL('../src/index.js', import.meta.url));

let root: string;
let n = 0;
const freshDir = () => join(root, `plane-${n++}`);

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'paddock-plane-'));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Checks, as a peer would, that every certificate of the plane is its service's, from its CA, for its key. */
async function assertConsistent(files: PlaneFiles, services: readonly PlaneService[] = PLANE_SERVICES): Promise<void> {
  const ca = new X509Certificate(await readFile(files.caFile));
  assert.ok(ca.ca, 'ca.crt is a CA certificate');
  assert.ok(ca.publicKey.export({ type: 'spki', format: 'der' }).equals(createPublicKey(createPrivateKey(await readFile(files.caKeyFile))).export({ type: 'spki', format: 'der' })));
  for (const service of services) {
    const paths = files.services[service];
    assert.ok(paths, service);
    const cert = new X509Certificate(await readFile(paths.certFile));
    assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), `${service}.crt is signed by ca.crt`);
    const key = createPrivateKey(await readFile(paths.keyFile));
    assert.ok(cert.publicKey.export({ type: 'spki', format: 'der' }).equals(createPublicKey(key).export({ type: 'spki', format: 'der' })), `${service}.crt is for ${service}.key`);
    assert.match(cert.subject, new RegExp(`^CN=${service}$`, 'm'));
    assert.ok(cert.subjectAltName?.includes(`URI:spiffe://paddock/${service}`), cert.subjectAltName);
    assert.equal((await stat(paths.keyFile)).mode & 0o777, 0o600, `${service}.key is 0600`);
  }
  assert.equal((await stat(files.caKeyFile)).mode & 0o777, 0o600, 'ca.key is 0600');
  assert.equal((await stat(files.specKeyFile)).mode & 0o777, 0o600, 'spec-key is 0600');
  assert.equal(Buffer.from((await readFile(files.specKeyFile, 'utf8')).trim(), 'base64').length, 32);
}

test('the first call makes a P-256 CA of about ten years and a certificate per service that also serves under the hosts asked for', async () => {
  const dir = freshDir();
  const files = await ensurePki(dir, { hosts: ['localhost', '127.0.0.1', '::1', 'paddock.internal'] });
  assert.deepEqual(files.issued, ['ca.crt: missing', ...PLANE_SERVICES.map((s) => `${s}.crt: missing`)]);
  await assertConsistent(files);
  const ca = new X509Certificate(await readFile(files.caFile));
  const caYears = (Date.parse(ca.validTo) - Date.now()) / (365 * DAY_MS);
  assert.ok(caYears > 9.9 && caYears < 10.1, `the CA lasts about ten years, not ${caYears}`);
  assert.equal(createPrivateKey(await readFile(files.caKeyFile)).asymmetricKeyDetails?.namedCurve, 'prime256v1');
  const broker = new X509Certificate(await readFile(files.services.broker!.certFile));
  assert.equal(broker.checkHost('paddock.internal'), 'paddock.internal');
  assert.equal(broker.checkHost('localhost'), 'localhost');
  assert.equal(broker.checkIP('127.0.0.1'), '127.0.0.1');
  assert.ok(broker.checkIP('::1'));
  assert.equal(broker.checkHost('elsewhere.example'), undefined);
  assert.equal(broker.ca, false);
  assert.ok(broker.keyUsage?.includes('1.3.6.1.5.5.7.3.1') && broker.keyUsage.includes('1.3.6.1.5.5.7.3.2'), 'for TLS servers and clients both');
});

test('a second call changes nothing; a service asked for later gets its certificate from the same CA', async () => {
  const dir = freshDir();
  const first = await ensurePki(dir, { services: ['broker', 'gateway'] });
  const before = await Promise.all(['ca.crt', 'ca.key', 'broker.crt', 'broker.key', 'gateway.crt', 'spec-key'].map((f) => readFile(join(dir, f))));
  const second = await ensurePki(dir, { services: ['broker', 'gateway'] });
  assert.deepEqual(second.issued, []);
  const now = await Promise.all(['ca.crt', 'ca.key', 'broker.crt', 'broker.key', 'gateway.crt', 'spec-key'].map((f) => readFile(join(dir, f))));
  assert.deepEqual(now, before, 'not a byte changed');
  assert.equal(second.specKeyFile, join(dir, 'spec-key'));
  const third = await ensurePki(dir, { services: ['broker', 'gateway', 'xds'] });
  assert.deepEqual(third.issued, ['xds.crt: missing']);
  await assertConsistent(third, ['broker', 'gateway', 'xds']);
  assert.equal(first.caFile, third.caFile);
});

test('processes that make the plane at the same moment end up with one CA, one key per service and certificates that match them', async () => {
  const dir = freshDir();
  const script = `import { ensurePki } from ${JSON.stringify(ENTRY)}; await ensurePki(${JSON.stringify(dir)});`;
  const child = () =>
    new Promise<void>((resolve, reject) => {
      const p = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      p.once('error', reject);
      p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ensurePki in a child exited ${code}: ${err}`))));
    });
  const results = await Promise.all([child(), child(), child(), ensurePki(dir), ensurePki(dir)]);
  const files = results[3]!;
  await assertConsistent(files);
  assert.deepEqual((await ensurePki(dir)).issued, [], 'what the race left is whole: nothing to issue again');
  assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith('.tmp')), [], 'no file written aside is left');
});

test('a certificate that expires within 30 days, comes from another CA, names another host set or lost its file is issued again, for the same key', async () => {
  const dir = freshDir();
  const files = await ensurePki(dir, { services: ['broker', 'gateway', 'scheduler'], hosts: ['localhost'] });
  const broker = files.services.broker!;
  const keyBefore = await readFile(broker.keyFile);

  // Expiring: issued by this very CA, but with ten days left.
  const expiring = await issueServiceCert({
    service: 'broker',
    hosts: ['localhost'],
    keyPem: keyBefore.toString(),
    caCertPem: (await readFile(files.caFile)).toString(),
    caKeyPem: (await readFile(files.caKeyFile)).toString(),
    validity: { notBefore: new Date(Date.now() - DAY_MS), notAfter: new Date(Date.now() + 10 * DAY_MS) },
  });
  await writeFile(broker.certFile, expiring);
  // From another plane's CA: the gateway's certificate of a stranger.
  const other = await ensurePki(freshDir(), { services: ['gateway'], hosts: ['localhost'] });
  await copyFile(other.services.gateway!.certFile, files.services.gateway!.certFile);
  await rm(files.services.scheduler!.certFile);

  const again = await ensurePki(dir, { services: ['broker', 'gateway', 'scheduler'], hosts: ['localhost'] });
  assert.deepEqual(again.issued, ['broker.crt: expires within 30 days', 'gateway.crt: not made for gateway.key', 'scheduler.crt: missing']);
  await assertConsistent(again, ['broker', 'gateway', 'scheduler']);
  assert.deepEqual(await readFile(broker.keyFile), keyBefore, 'the key stays');
  const renewed = new X509Certificate(await readFile(broker.certFile));
  assert.ok(Date.parse(renewed.validTo) - Date.now() > 300 * DAY_MS, 'renewed for a year');

  // A certificate for the right key but signed by another CA (ca.* replaced: the CA was rotated).
  await rm(files.caFile);
  await rm(files.caKeyFile);
  const rotated = await ensurePki(dir, { services: ['broker', 'gateway', 'scheduler'], hosts: ['localhost'] });
  assert.deepEqual(rotated.issued, ['ca.crt: missing', 'broker.crt: not issued by this CA', 'gateway.crt: not issued by this CA', 'scheduler.crt: not issued by this CA']);
  await assertConsistent(rotated, ['broker', 'gateway', 'scheduler']);

  const moreHosts = await ensurePki(dir, { services: ['broker'], hosts: ['localhost', '10.0.0.7'] });
  assert.deepEqual(moreHosts.issued, ['broker.crt: does not name host 10.0.0.7']);
  assert.equal(new X509Certificate(await readFile(broker.certFile)).checkIP('10.0.0.7'), '10.0.0.7');
});

test('a key file that is not a key stops it with the file named, and is never replaced', async () => {
  const dir = freshDir();
  await ensurePki(dir, { services: ['broker'] });
  await writeFile(join(dir, 'broker.key'), 'not a key\n', { mode: 0o600 });
  await assert.rejects(ensurePki(dir, { services: ['broker'] }), (err: Error) => {
    assert.equal(err.name, 'PlaneError');
    assert.match(err.message, /broker\.key: is not a private key in PEM; remove it/);
    return true;
  });
  assert.equal(await readFile(join(dir, 'broker.key'), 'utf8'), 'not a key\n');
  await assert.rejects(ensurePki(dir, { hosts: ['bad host'] }), /"bad host" is not a host name/);
});
