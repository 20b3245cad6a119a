import { join } from 'node:path';
import Docker from 'dockerode';
import { Bus } from '@paddock/bus';
import { ensurePki, planeDir, type PlaneFiles } from '@paddock/plane';
import { createLogger, type Logger } from '@paddock/telemetry';
import { startBroker, type StartedBroker } from '../../src/broker.js';
import { brokerConfig, type BrokerConfig } from '../../src/config.js';
import { startBackingServices, type BackingServices } from './backingServices.js';
import { removeContainersOf } from './containers.js';

export interface TestBroker {
  readonly brokerId: string;
  readonly services: BackingServices;
  readonly config: BrokerConfig;
  /** The environment a broker process of this test is started with (same id, database, NATS). */
  readonly env: Record<string, string>;
  readonly docker: Docker;
  /** The plane made in the test's PADDOCK_HOME: the broker serves with its certificate, clients use theirs. */
  readonly plane: PlaneFiles;
  /** Another service's connection to NATS, to watch what the broker publishes. */
  readonly bus: Bus;
  readonly log: Logger;
  /** Starts the broker in this process, as main.ts does; it reconciles what it finds first. */
  start(): Promise<StartedBroker>;
  /** Stops what it started and removes every container labelled with this test's broker id. */
  stop(): Promise<void>;
}

/**
 * Everything one test file needs around a broker: real nats-server and PostgreSQL, the Docker engine,
 * the plane's certificates (in PADDOCK_HOME/plane, as `paddock up` makes them), and a broker id of its
 * own, so that it never sees, adopts or removes another test's containers.
 */
export async function setUpTestBroker(name: string, extraEnv: Record<string, string> = {}): Promise<TestBroker> {
  const brokerId = `test-${name}-${process.pid}`;
  const services = await startBackingServices();
  const plane = await ensurePki(planeDir(services.dir), { hosts: ['localhost', '127.0.0.1'] });
  const env = {
    PADDOCK_HOME: services.dir,
    PADDOCK_BROKER_ID: brokerId,
    PADDOCK_BROKER_PORT: '0',
    NATS_URL: services.natsUrl,
    DATABASE_URL: services.databaseUrl,
    PADDOCK_ARTIFACTS_DIR: join(services.dir, 'artifacts'),
    PADDOCK_STOP_GRACE_MS: '1000',
    ...extraEnv,
  };
  const config = brokerConfig(env);
  const log = createLogger('broker-test', 'silent');
  const docker = new Docker({ socketPath: config.dockerSocket });
  const bus = await Bus.connect({ url: services.natsUrl, name: `${brokerId}-observer`, log });
  const started = new Set<StartedBroker>();
  return {
    brokerId,
    services,
    config,
    env,
    docker,
    plane,
    bus,
    log,
    start: async () => {
      const broker = await startBroker(config, log);
      started.add(broker);
      return broker;
    },
    stop: async () => {
      for (const b of started) await b.stop();
      await bus.drain();
      await removeContainersOf(docker, brokerId);
      await services.stop();
    },
  };
}
