import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAccount, fromPublic } from 'nkeys.js';
import { pino } from 'pino';
import { ConfigError } from '@paddock/errors';
import { Bus, busSettingsFromEnv, compileBusConfig, ensureNatsIdentity, NatsIdentityError, readNatsKey } from '../src/index.js';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'paddock-nkey-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('ensureNatsIdentity makes a user seed once, readable by its owner only, and returns the same key after', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'plane', 'nats', 'gateway.nk');
  const first = await ensureNatsIdentity(file);
  assert.match(first.seed, /^SU[A-Z2-7]{56}$/);
  assert.match(first.publicKey, /^U[A-Z2-7]{55}$/);
  assert.ok(fromPublic(first.publicKey), 'a valid public key');
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.equal((await stat(join(dir, 'plane', 'nats'))).mode & 0o777, 0o700);
  assert.equal((await readFile(file, 'utf8')).trim(), first.seed);
  assert.deepEqual(await ensureNatsIdentity(file), first);
  assert.deepEqual(await readNatsKey(file), first);
});

test('processes that make the same identity at once all get the one that won, and leave nothing aside', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'scheduler.nk');
  const keys = await Promise.all(Array.from({ length: 16 }, () => ensureNatsIdentity(file)));
  assert.equal(new Set(keys.map((k) => k.publicKey)).size, 1);
  assert.equal(keys[0]!.publicKey, (await readNatsKey(file)).publicKey);
  assert.deepEqual(await readdir(dir), ['scheduler.nk']);
});

test('a seed file that is not a user seed is refused with the file named, and never replaced', async (t) => {
  const dir = await tempDir(t);
  const garbage = join(dir, 'garbage.nk');
  await writeFile(garbage, 'not a seed\n', { mode: 0o600 });
  await assert.rejects(ensureNatsIdentity(garbage), (err: unknown) => err instanceof NatsIdentityError && err.file === garbage && /does not hold a NATS nkey seed/.test(err.message));
  assert.equal(await readFile(garbage, 'utf8'), 'not a seed\n');

  const account = join(dir, 'account.nk');
  await writeFile(account, new TextDecoder().decode(createAccount().getSeed()), { mode: 0o600 });
  await assert.rejects(readNatsKey(account), /not a user's \(it starts with SA, not SU\)/);
  await assert.rejects(readNatsKey(join(dir, 'missing.nk')), (err: unknown) => err instanceof NatsIdentityError && /cannot read the NATS seed/.test(err.message));
});

test('the settings name a seed file and its user together, or neither', async (t) => {
  assert.equal(compileBusConfig(busSettingsFromEnv({})).nkey, null);
  const settings = busSettingsFromEnv({ NATS_NKEY_FILE: '/keys/broker.nk', PADDOCK_NATS_USER: 'broker' });
  assert.deepEqual(compileBusConfig(settings).nkey, { file: '/keys/broker.nk', user: 'broker' });

  const setting = (name: string) => (err: unknown) => err instanceof ConfigError && err.setting === name;
  assert.throws(() => compileBusConfig(busSettingsFromEnv({ NATS_NKEY_FILE: '/keys/broker.nk' })), setting('PADDOCK_NATS_USER'));
  assert.throws(() => compileBusConfig(busSettingsFromEnv({ PADDOCK_NATS_USER: 'broker' })), setting('NATS_NKEY_FILE'));
  assert.throws(() => busSettingsFromEnv({ NATS_NKEY_FILE: '/keys/x.nk', PADDOCK_NATS_USER: 'brokr' }), (err: unknown) => setting('PADDOCK_NATS_USER')(err) && /gateway, scheduler, broker/.test(String(err)));

  // A seed file that cannot be used stops Bus.connect before it dials anything (the URL leads nowhere).
  const dir = await tempDir(t);
  const log = pino({ level: 'silent' });
  await assert.rejects(
    Bus.connect({ url: 'nats://127.0.0.1:1', name: 't', log, nkeyFile: join(dir, 'missing.nk'), natsUser: 'broker' }),
    (err: unknown) => setting('NATS_NKEY_FILE')(err) && /missing\.nk: cannot read/.test(String(err)),
  );
  const file = join(dir, 'broker.nk');
  const key = await ensureNatsIdentity(file);
  await assert.rejects(
    Bus.connect({ url: 'nats://127.0.0.1:1', name: 't', log, nkeyFile: file, natsUser: 'broker', identity: { user: 'broker', seed: key.seed } }),
    setting('NATS_NKEY_FILE'),
  );
});
