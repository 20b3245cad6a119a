import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nkeyAuthenticator, type ConnectionOptions } from 'nats';
import { ApiClient } from './apiClient.js';
import { freePort } from './freePort.js';

const REPO = fileURLToPath(new URL('../../../../', import.meta.url));

export interface StartPaddockOptions {
  /** Extra environment for `paddock up` and the services. */
  env?: Record<string, string>;
  /** How long to wait for /healthz. */
  readyTimeoutMs?: number;
}

export interface RunningPaddock {
  readonly url: string;
  readonly home: string;
  readonly natsUrl: string;
  /**
   * How a test or a tool connects to this Paddock's NATS, which refuses anonymous connections: as its
   * `admin` user, with the key `paddock up` made in PADDOCK_HOME/plane/nats.
   */
  natsOptions(name: string): ConnectionOptions;
  readonly admin: ApiClient;
  readonly env: Record<string, string>;
  /** Where the scheduler and the broker serve `GET /metrics` (loopback, no token); the gateway's is at `${url}/metrics`, for the admin. */
  readonly metricsUrls: { readonly scheduler: string; readonly broker: string };
  /** The gateway's embedded ingress (`http://{id}-{port}.localhost:<ingressPort>/`) and WS-TCP bridge. */
  readonly ingressPort: number;
  readonly bridgePort: number;
  /** The pid of a service (or of nats-server) run by this `paddock up`. */
  pidOf(name: 'paddock-gateway' | 'paddock-scheduler' | 'paddock-broker' | 'paddock-portdetect' | 'paddock-xds' | 'nats-server'): number | undefined;
  /** Everything `paddock up` printed so far. */
  output(): string;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * A whole Paddock for a test or a benchmark, as `paddock up` runs it: its own PADDOCK_HOME, PostgreSQL,
 * nats-server and ports, so runs never share state. Needs the repo built and Docker running.
 */
export async function startPaddock(opts: StartPaddockOptions = {}): Promise<RunningPaddock> {
  const home = await mkdtemp(join(tmpdir(), 'paddock-test-'));
  const [port, natsPort, dbPort, brokerPort, schedulerMetricsPort, brokerMetricsPort, xdsPort, ingressPort, bridgePort, billingPort] = await Promise.all(
    Array.from({ length: 10 }, () => freePort()),
  );
  const env: Record<string, string> = {
    PADDOCK_HOME: home,
    PADDOCK_PORT: String(port),
    PADDOCK_NATS_PORT: String(natsPort),
    PADDOCK_DB_PORT: String(dbPort),
    PADDOCK_BROKER_PORT: String(brokerPort),
    // Free ports rather than `paddock up`'s fixed defaults, so that test Paddocks run side by side.
    PADDOCK_SCHEDULER_METRICS_PORT: String(schedulerMetricsPort),
    PADDOCK_BROKER_METRICS_PORT: String(brokerMetricsPort),
    PADDOCK_XDS_PORT: String(xdsPort),
    PADDOCK_INGRESS_PORT: String(ingressPort),
    PADDOCK_BRIDGE_PORT: String(bridgePort),
    PADDOCK_BILLING_PORT: String(billingPort),
    PADDOCK_BROKER_RELAY_PORT: '0',
    // Each test Paddock is its own broker, so they never adopt each other's containers.
    PADDOCK_BROKER_ID: `test-${port}`,
    LOG_LEVEL: 'warn',
    ...opts.env,
  };
  const childEnv = { ...process.env, ...env };
  delete childEnv['NATS_URL'];
  delete childEnv['DATABASE_URL'];
  const child: ChildProcess = spawn(process.execPath, [join(REPO, 'cli/dist/src/main.js'), 'up'], {
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 90_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`paddock up exited with ${child.exitCode} before it was ready:\n${out}`);
    const ok = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`paddock up was not ready within the timeout:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const token = (await readFile(join(home, 'admin-token'), 'utf8')).trim();

  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        await exited;
        clearTimeout(timer);
      }
      // A stopped broker leaves its containers running for the next one to adopt; a test's broker has no next.
      removeContainersOf(env['PADDOCK_BROKER_ID']!);
      // As root, PADDOCK_HOME/postgres links to the data's real folder elsewhere (cli's postgresDir): remove both.
      const postgresData = await realpath(join(home, 'postgres')).catch(() => undefined);
      if (postgresData !== undefined && postgresData !== join(home, 'postgres')) await rm(postgresData, { recursive: true, force: true }).catch(() => {});
      await rm(home, { recursive: true, force: true }).catch(() => {});
    })());

  return {
    url,
    home,
    natsUrl: `nats://127.0.0.1:${natsPort}`,
    natsOptions: (name) => ({
      servers: `nats://127.0.0.1:${natsPort}`,
      name,
      authenticator: nkeyAuthenticator(new TextEncoder().encode(readFileSync(join(home, 'plane', 'nats', 'admin.nk'), 'utf8').trim())),
    }),
    admin: new ApiClient(url, token),
    env,
    ingressPort: Number(env['PADDOCK_INGRESS_PORT']),
    bridgePort: Number(env['PADDOCK_BRIDGE_PORT']),
    metricsUrls: {
      scheduler: `http://127.0.0.1:${env['PADDOCK_SCHEDULER_METRICS_PORT']}/metrics`,
      broker: `http://127.0.0.1:${env['PADDOCK_BROKER_METRICS_PORT']}/metrics`,
    },
    pidOf(name) {
      const lines = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(child.pid)], { encoding: 'utf8' }).split('\n');
      for (const line of lines) {
        const [pid, ...args] = line.trim().split(/\s+/);
        if (args.join(' ').startsWith(name)) return Number(pid);
      }
      return undefined;
    },
    output: () => out,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

function removeContainersOf(brokerId: string): void {
  try {
    const ids = execFileSync('docker', ['ps', '-aq', '--filter', `label=io.paddock.broker-id=${brokerId}`], { encoding: 'utf8' }).split('\n').filter(Boolean);
    if (ids.length > 0) execFileSync('docker', ['rm', '-f', ...ids], { stdio: 'ignore' });
    // The networks of its bridged executions go with them.
    const networks = execFileSync('docker', ['network', 'ls', '-q', '--filter', `label=io.paddock.broker-id=${brokerId}`], { encoding: 'utf8' }).split('\n').filter(Boolean);
    if (networks.length > 0) execFileSync('docker', ['network', 'rm', ...networks], { stdio: 'ignore' });
  } catch {
    // Docker is gone too: nothing to clean.
  }
}
