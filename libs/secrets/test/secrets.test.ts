import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ExecutionKind, ExecutionSpec, NetworkMode } from '@paddock/proto';
import { SecretBox, SecretKeyError, sealSpec, unsealSpec } from '../src/index.js';

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
  const box = SecretBox.withKey(randomBytes(32));
  const sealed = sealSpec(spec, box, 'ex1');
  const wire = Buffer.from(ExecutionSpec.encode(sealed).finish());
  for (const secret of ['sk-live-secret', 'ghp_secret', 'fast']) assert.ok(!wire.includes(Buffer.from(secret)), secret);
  assert.deepEqual(sealed.env, {});
  const opened = unsealSpec(ExecutionSpec.decode(wire), box, 'ex1');
  assert.deepEqual(opened.env, spec.env);
  assert.equal(opened.agent?.repoToken, 'ghp_secret');
  assert.equal(opened.sealed.length, 0);
  assert.throws(() => unsealSpec(sealed, box, 'ex2'), SecretKeyError, 'bound to its execution');
  const plain = { ...spec, env: {}, agent: undefined };
  assert.equal(sealSpec(plain, box, 'ex3'), plain, 'nothing to seal: unchanged');
});
