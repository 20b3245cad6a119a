import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ExecutionKind, ExecutionSpec, NetworkMode } from '@paddock/proto';
import { SecretBox, SecretKeyError, SpecKey, sealSpec, unsealSpec } from '../src/index.js';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-secrets-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('a sealed value opens only with the same key and the same associated data, and not once tampered', () => {
  const box = SecretBox.withKey(randomBytes(32));
  const sealed = box.seal('sk-123', 'owner/a');
  assert.ok(!sealed.includes(Buffer.from('sk-123')));
  assert.equal(box.open(sealed, 'owner/a'), 'sk-123');
  assert.throws(() => box.open(sealed, 'owner/b'), SecretKeyError);
  assert.throws(() => SecretBox.withKey(randomBytes(32)).open(sealed, 'owner/a'), SecretKeyError);
  const tampered = Buffer.from(sealed);
  tampered[14] = tampered[14]! ^ 1;
  assert.throws(() => box.open(tampered, 'owner/a'), SecretKeyError);
  assert.throws(() => SecretBox.withKey(randomBytes(16)), /32 bytes/);
});

test('services starting at once all end up with the one key file, mode 0600', async () => {
  const file = join(dir, 'home', 'secret-key');
  const boxes = await Promise.all(Array.from({ length: 8 }, () => SecretBox.fromFile(file)));
  const sealed = boxes[0]!.seal('shared', 'x');
  for (const box of boxes) assert.equal(box.open(sealed, 'x'), 'shared');
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.equal(Buffer.from((await readFile(file, 'utf8')).trim(), 'base64').length, 32);
});

const spec: ExecutionSpec = {
  kind: ExecutionKind.EXECUTION_KIND_AGENT,
  command: '',
  script: '',
  files: {},
  env: { OPENAI_API_KEY: 'sk-live-secret', MODE: 'fast' },
  image: 'paddock/task:latest',
  cpuMillis: 1000,
  memoryBytes: 1 << 30,
  timeoutMs: 60_000,
  network: NetworkMode.NETWORK_MODE_BRIDGE,
  pidsLimit: 0,
  agent: { runtime: 'task', prompt: 'p', repoUrl: 'https://example.com/r.git', repoBranch: '', repoToken: 'ghp_secret' },
  service: false,
  sealed: Buffer.alloc(0),
  fileRefs: {},
  scriptRef: undefined,
  diskBytes: 0,
  egress: [],
};

test('a sealed spec carries no env value or token in clear, and opens back whole for its own execution only', () => {
  const key = SpecKey.withKey(randomBytes(32));
  const sealed = sealSpec(spec, key, 'ex1');
  const wire = Buffer.from(ExecutionSpec.encode(sealed).finish());
  for (const secret of ['sk-live-secret', 'ghp_secret', 'fast']) assert.ok(!wire.includes(Buffer.from(secret)), secret);
  assert.deepEqual(sealed.env, {});
  const opened = unsealSpec(ExecutionSpec.decode(wire), key, 'ex1');
  assert.deepEqual(opened.env, spec.env);
  assert.equal(opened.agent?.repoToken, 'ghp_secret');
  assert.equal(opened.sealed.length, 0);
  assert.throws(() => unsealSpec(sealed, key, 'ex2'), SecretKeyError, 'bound to its execution');
  const plain = { ...spec, env: {}, agent: undefined };
  assert.equal(sealSpec(plain, key, 'ex3'), plain, 'nothing to seal: unchanged');
});

test("a spec sealed with the users' secrets key does not open with the spec key, and the error names the spec key's file", async () => {
  const home = join(dir, 'split');
  const secretsFile = join(home, 'secret-key');
  const specFile = join(home, 'plane', 'spec-key');
  await SecretBox.fromFile(secretsFile);
  const specKey = await SpecKey.fromFile(specFile);
  assert.notDeepEqual(await readFile(secretsFile, 'utf8'), await readFile(specFile, 'utf8'), 'two keys, made apart');
  assert.equal((await stat(specFile)).mode & 0o777, 0o600);
  // What a gateway that still sealed with its secrets key would send.
  const sealedWithSecretsKey = sealSpec(spec, await SpecKey.fromFile(secretsFile), 'ex1');
  assert.throws(
    () => unsealSpec(sealedWithSecretsKey, specKey, 'ex1'),
    (err: Error) => err instanceof SecretKeyError && err.message.includes(`the spec key in ${specFile}`) && /PADDOCK_SPEC_KEY_FILE/.test(err.message),
  );
  assert.deepEqual(unsealSpec(sealSpec(spec, specKey, 'ex1'), await SpecKey.existing(specFile), 'ex1').env, spec.env, 'the gateway and the broker share the spec key');
});

test('whoever only opens specs does not make a spec key of its own: a missing file is an error that says where the key comes from', async () => {
  const file = join(dir, 'nowhere', 'plane', 'spec-key');
  await assert.rejects(SpecKey.existing(file), (err: Error) => err instanceof SecretKeyError && err.message.startsWith(`${file} does not exist`) && err.message.includes('`paddock up` makes'));
  await assert.rejects(stat(file), { code: 'ENOENT' });
});
