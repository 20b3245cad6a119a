// The internal plane of a real `paddock up` refuses strangers: its NATS takes no connection without a
// service's key and holds each service to its own subjects, the broker's gRPC takes no call without a
// certificate of Paddock's CA, and each service's database role cannot touch another's tables.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { connect, nkeyAuthenticator } from 'nats';
import pg from 'pg';
import { topics } from '@paddock/bus';
import { BrokerClient } from '@paddock/proto';
import { startPaddock, type RunningPaddock } from '@paddock/testkit';

let paddock: RunningPaddock;

before(async () => {
  paddock = await startPaddock();
});

after(async () => {
  await paddock?.stop();
});

async function seedOf(user: string): Promise<Uint8Array> {
  return new TextEncoder().encode((await readFile(join(paddock.home, 'plane', 'nats', `${user}.nk`), 'utf8')).trim());
}

test('NATS: no connection without a key; a service key may not publish what another service owns', async () => {
  await assert.rejects(connect({ servers: paddock.natsUrl, timeout: 5_000, reconnect: false }), /AUTHORIZATION_VIOLATION|Authorization Violation/i);

  const nc = await connect({ servers: paddock.natsUrl, authenticator: nkeyAuthenticator(await seedOf('broker')), inboxPrefix: '_INBOX_broker', timeout: 5_000 });
  try {
    const refused = new Promise<string>((resolve) => {
      void (async () => {
        for await (const s of nc.status()) if (s.type === 'error') resolve(String(s.data));
      })();
    });
    // Only the gateway may ask for an execution.
    nc.publish(topics.executionRequested.subject('forged'), new Uint8Array([1]));
    assert.match(await refused, /permissions.violation/i);
  } finally {
    await nc.close();
  }
});

test('gRPC: the broker refuses a call without a certificate, over plain TCP or TLS', async () => {
  const address = `127.0.0.1:${paddock.env['PADDOCK_BROKER_PORT']}`;
  const call = (client: BrokerClient) =>
    new Promise<ServiceError | null>((resolve) => {
      client.access({ executionId: 'none' }, new Metadata(), { deadline: Date.now() + 5_000 }, (err) => resolve(err));
    });
  const plain = new BrokerClient(address, credentials.createInsecure());
  try {
    const err = await call(plain);
    assert.equal(err?.code, status.UNAVAILABLE, `a plain call: ${err?.message}`);
  } finally {
    plain.close();
  }
  // TLS that trusts Paddock's CA but shows no client certificate: the handshake is refused.
  const ca = await readFile(join(paddock.home, 'plane', 'ca.crt'));
  const anonymous = new BrokerClient(address, credentials.createSsl(ca), { 'grpc.ssl_target_name_override': 'localhost' });
  try {
    const err = await call(anonymous);
    assert.equal(err?.code, status.UNAVAILABLE, `a call with no client certificate: ${err?.message}`);
  } finally {
    anonymous.close();
  }
});

test("PostgreSQL: the scheduler's role cannot read or write the gateway's tables", async () => {
  const admin = new URL((await readFile(join(paddock.home, 'database-url'), 'utf8')).trim());
  const password = (await readFile(join(paddock.home, 'plane', 'db', 'scheduler.password'), 'utf8')).trim();
  const url = new URL(admin);
  url.username = 'paddock_scheduler';
  url.password = encodeURIComponent(password);
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    assert.equal((await client.query('SELECT count(*) FROM scheduler_jobs')).rowCount, 1, 'its own table, by its search_path');
    for (const sql of ['SELECT * FROM gateway.users', "UPDATE gateway.executions SET state = 'failed'", 'CREATE TABLE public.stranger (x int)']) {
      await assert.rejects(client.query(sql), (err: { code?: string }) => err.code === '42501', sql);
    }
  } finally {
    await client.end();
  }
  const wrong = new URL(url);
  wrong.password = 'not-the-password';
  const stranger = new pg.Client({ connectionString: wrong.toString() });
  await assert.rejects(stranger.connect(), (err: { code?: string }) => err.code === '28P01');
});
