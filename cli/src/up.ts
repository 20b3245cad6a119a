import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureNatsIdentity, NATS_USERS, natsServerConfig } from '@paddock/bus';
import { ensureRolePasswords, ensureServiceRoles, RolePrivilegesError, serviceDatabaseUrl } from '@paddock/db';
import { ensurePki, planeDir } from '@paddock/plane';
import { parseArgs } from './args.js';
import { canConnect } from './canConnect.js';
import type { Command } from './command.js';
import type { Context } from './context.js';
import { CommandError, UsageError } from './errors.js';
import { LogFiles } from './logFiles.js';
import { formatLogLine } from './logLine.js';
import { postgresDir } from './postgresDir.js';
import { Supervised, type Exit, type SupervisorHooks } from './supervisor.js';
import { upConfig, type UpConfig } from './upConfig.js';
import { waitUntil } from './waitUntil.js';

const CLI_MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
const HEALTH_POLL_MS = 300;
const PORT_POLL_MS = 100;
const SLOW_START_NOTICE_MS = 60_000;
/** Where the NKey seed of a NATS user (a service, or `admin` for operators and tools) is kept. */
export function natsKeyFile(home: string, user: string): string {
  return join(planeDir(home), 'nats', `${user}.nk`);
}

/** The services that keep state in PostgreSQL: each connects as its own role, to its own schema. */
const DATABASE_SERVICES: readonly string[] = ['gateway', 'scheduler', 'broker', 'billing'];

export const up: Command = {
  name: 'up',
  summary: 'run Paddock on this machine, in the foreground',
  usage: `Usage: paddock up

Runs Paddock on this machine in the foreground: PostgreSQL (embedded, unless DATABASE_URL is set), a NATS
server (unless NATS_URL is set or one already listens on PADDOCK_NATS_PORT), and the scheduler, broker,
portdetect, xds and gateway services. The services call each other with the certificates, NATS keys and
database roles made in PADDOCK_HOME/plane at the first start. Whatever of these dies (even killed -9) is started again after a short delay that
grows while it keeps dying: PostgreSQL on the same data and port, nats-server with its JetStream store.
A service whose PostgreSQL or NATS is down waits for it meanwhile instead of exiting.
Logs go to the terminal and to PADDOCK_HOME/logs/. Ctrl-C stops everything in order (services, then
NATS, then PostgreSQL); a second Ctrl-C kills what is left.

Environment:
  PADDOCK_HOME       state directory (default ~/.paddock)
  PADDOCK_HOST       address the API listens on (default 127.0.0.1)
  PADDOCK_PORT       port of the API (default 7070)
  PADDOCK_DB_PORT    port of the embedded PostgreSQL (default 7432)
  PADDOCK_NATS_PORT  port of the NATS server started here (default 4222)
  PADDOCK_XDS_PORT   port of services/xds's ADS, on loopback (default 18000)
  PADDOCK_INGRESS_PORT  the ingress: http://{id}-{port}.localhost:PORT reaches a port of an instance (default 8080, 0 for none)
  PADDOCK_BRIDGE_PORT   the WS-TCP bridge that paddock port-forward uses (default 8082, 0 for none)
  PADDOCK_BILLING_PORT  port of billing's gRPC API, on loopback (default 7074)
  PADDOCK_BROKER_RELAY_PORT  the broker's HTTP relay for an Envoy at the edge (envoy/README.md; default 7075, 0 for a free one)
  PADDOCK_LLM_UPSTREAMS where billing's metering proxy sends LLM calls (default: the providers' own APIs),
                        e.g. openai=https://api.openai.com,anthropic=https://api.anthropic.com
  DATABASE_URL       use this PostgreSQL instead of the embedded one
  NATS_URL           use this NATS server instead of starting one
  PADDOCK_SCHEDULER_METRICS_PORT  loopback port of the scheduler's /metrics (default 7072, 0 for none)
  PADDOCK_BROKER_METRICS_PORT     loopback port of the broker's /metrics (default 7073, 0 for none)
  OTEL_EXPORTER_OTLP_ENDPOINT     push traces and metrics to this OTLP/HTTP collector too

Metrics: Prometheus scrapes the gateway at <API>/metrics with the admin token as a bearer token, and the
scheduler and broker at http://127.0.0.1:<port>/metrics (loopback only).`,

  async run(ctx, argv) {
    const args = parseArgs(argv, {}, { command: 'up' });
    if (args.help) {
      ctx.stdout.write(`${this.usage}\n`);
      return 0;
    }
    if (args.positionals.length > 0 || args.rest.length > 0) throw new UsageError('up takes no arguments', 'up');
    return new Stack(ctx, upConfig(ctx.env, ctx.repoRoot)).run();
  },
};

/** One run of `paddock up`: what it started, so that it stops exactly that, services first, then NATS, then PostgreSQL. */
class Stack {
  readonly #ctx: Context;
  readonly #config: UpConfig;
  readonly #logs: LogFiles;
  readonly #shutdown = new AbortController();
  readonly #services: Supervised[] = [];
  #nats: Supervised | undefined;
  #postgres: Supervised | undefined;
  #forced = false;
  readonly #prefixWidth: number;

  constructor(ctx: Context, config: UpConfig) {
    this.#ctx = ctx;
    this.#config = config;
    this.#logs = new LogFiles(config.logsDir);
    this.#prefixWidth = Math.max(...config.services.map((name) => name.length)) + 2;
  }

  async run(): Promise<number> {
    const unsubscribe = this.#ctx.interrupts.subscribe((signal) => this.#interrupted(signal));
    let status = 0;
    try {
      await this.#preflight();
      await mkdir(this.#config.logsDir, { recursive: true });
      // The metering proxy's socket: only root (the services) reaches it on the host; instances reach it through the relay.
      await mkdir(dirname(this.#config.llmProxySocket), { recursive: true, mode: 0o700 });
      const adminUrl = this.#config.databaseUrl ?? (await this.#startPostgres());
      await writeFile(this.#config.databaseUrlFile, adminUrl, { mode: 0o600 });
      const natsUrl = this.#config.natsUrl ?? (await this.#ensureNats());
      const databaseUrls = await this.#ensureServiceRoles(adminUrl);
      await this.#startServices(databaseUrls, natsUrl);
      await this.#waitHealthy();
      this.#ctx.stdout.write(`Paddock is up: ${this.#config.publicUrl}  (admin token: ${this.#config.adminTokenFile})\n`);
      this.#ctx.stdout.write(`Metrics: ${this.#metricsLine()}\n`);
      await new Promise<void>((resolve) => this.#shutdown.signal.addEventListener('abort', () => resolve(), { once: true }));
    } catch (err) {
      if (!this.#shutdown.signal.aborted) {
        this.#ctx.stderr.write(`paddock: ${(err as Error).message}\n`);
        status = 1;
      }
    } finally {
      await this.#stopAll();
      await this.#logs.close();
      unsubscribe();
    }
    return this.#forced ? 130 : status;
  }

  /** Where each part serves its metrics, as `up` prints it once Paddock is up. */
  #metricsLine(): string {
    const { publicUrl, metricsPorts } = this.#config;
    const parts = [`gateway ${publicUrl}/metrics (bearer: the admin token)`];
    for (const [name, port] of Object.entries(metricsPorts)) {
      if (name !== 'gateway') parts.push(port === 0 ? `${name} none` : `${name} http://127.0.0.1:${port}/metrics`);
    }
    return parts.join(', ');
  }

  #say(message: string): void {
    this.#ctx.stdout.write(`[paddock] ${message}\n`);
  }

  #interrupted(signal: string): void {
    if (!this.#shutdown.signal.aborted) {
      this.#say(`${signal}: stopping (press Ctrl-C again to kill everything now)`);
      this.#shutdown.abort();
    } else if (!this.#forced) {
      this.#forced = true;
      this.#say(`${signal}: killing what is still running`);
      for (const proc of this.#all()) void proc.kill();
    }
  }

  #all(): Supervised[] {
    return [...this.#services, ...(this.#nats ? [this.#nats] : []), ...(this.#postgres ? [this.#postgres] : [])];
  }

  async #preflight(): Promise<void> {
    const { repoRoot, services, httpPort, publicUrl } = this.#config;
    for (const name of services) {
      const main = serviceMain(repoRoot, name);
      if (!existsSync(main)) throw new CommandError(`services/${name} is not built (${main} is missing): run \`npx tsc -b\` in ${repoRoot}`);
    }
    if (await canConnect(new URL(publicUrl).hostname.replace(/^\[|\]$/g, ''), httpPort)) {
      throw new CommandError(`something already listens on port ${httpPort} (another \`paddock up\`?); stop it or set PADDOCK_PORT`);
    }
    // A taken port would stop its service at each start, over and over: refuse before starting anything.
    const { xdsPort, ingressPort, bridgePort, billingPort, brokerRelayPort } = this.#config;
    const ports: [number, string, string][] = [
      [xdsPort, "services/xds's ADS port", 'PADDOCK_XDS_PORT'],
      [billingPort, "billing's gRPC port", 'PADDOCK_BILLING_PORT'],
      [brokerRelayPort, "the broker's HTTP relay for Envoy", 'PADDOCK_BROKER_RELAY_PORT (0 for a free one)'],
      [ingressPort, "the gateway's ingress port", 'PADDOCK_INGRESS_PORT (0 for none)'],
      [bridgePort, "the gateway's WS-TCP bridge port", 'PADDOCK_BRIDGE_PORT (0 for none)'],
      ...Object.entries(this.#config.metricsPorts).map(([name, port]): [number, string, string] => [port, `the ${name}'s metrics port`, `PADDOCK_${name.toUpperCase()}_METRICS_PORT (0 for none)`]),
    ];
    for (const [port, what, setting] of ports) {
      if (port !== 0 && (await canConnect('127.0.0.1', port))) {
        throw new CommandError(`something already listens on port ${port}, ${what} (another \`paddock up\`?); stop it, or set ${setting}`);
      }
    }
  }

  async #startPostgres(): Promise<string> {
    const { postgresPort } = this.#config;
    const dataDir = await postgresDir(this.#config.postgresDir);
    // A `paddock up` killed with everything it ran (kill -9 of its process group) leaves its PostgreSQL
    // running on this data and port: `__postgres` stops that one, or refuses if its starter is still alive.
    if ((await canConnect('127.0.0.1', postgresPort)) && !(await serverOnDataDir(dataDir, postgresPort))) {
      throw new CommandError(`port ${postgresPort} for the embedded PostgreSQL is taken (another \`paddock up\`?); set PADDOCK_DB_PORT, or DATABASE_URL to use that database`);
    }
    this.#say(`starting PostgreSQL on port ${postgresPort} (data in ${dataDir}, log in ${this.#logs.path('postgres')})`);
    let url: string | undefined;
    let failure: Error | undefined;
    this.#postgres = Supervised.start(
      {
        name: 'postgres',
        command: this.#ctx.nodePath,
        args: [CLI_MAIN, '__postgres', '--dir', dataDir, '--port', String(postgresPort)],
        env: this.#ctx.env,
      },
      {
        hooks: this.#infraHooks({
          label: 'PostgreSQL',
          logName: 'postgres',
          isReady: () => url !== undefined,
          fail: (err) => (failure = err),
          onStdout: (line) => {
            const announced = parseUrlLine(line);
            if (announced === undefined) this.#logs.write('postgres', line);
            else if (url === undefined) url = announced;
            else this.#say(`PostgreSQL is back on port ${postgresPort}`);
          },
        }),
      },
    );
    await waitUntil(
      async () => {
        if (failure !== undefined) throw failure;
        return url !== undefined;
      },
      { intervalMs: PORT_POLL_MS, signal: this.#shutdown.signal },
    );
    return url as string;
  }

  /**
   * Each service's own PostgreSQL role and schema, set up with the admin URL (the embedded server's
   * superuser, or DATABASE_URL), and the DATABASE_URL each service gets: the same server and database, as
   * its own role. The role passwords are generated once and kept in PADDOCK_HOME/plane/db/.
   */
  async #ensureServiceRoles(adminUrl: string): Promise<ReadonlyMap<string, string>> {
    const services = this.#config.services.filter((name) => DATABASE_SERVICES.includes(name));
    const roles = await ensureRolePasswords(join(planeDir(this.#config.home), 'db'), services);
    const log = { info: (_: object, message: string) => this.#say(message), warn: (_: object, message: string) => this.#say(message) };
    try {
      const setup = await ensureServiceRoles(adminUrl, roles, { log, signal: this.#shutdown.signal });
      for (const change of setup.changes) this.#say(`database: ${change}`);
    } catch (err) {
      if (err instanceof RolePrivilegesError && this.#config.databaseUrl !== undefined) {
        throw new CommandError(`DATABASE_URL: ${err.message}. Each Paddock service connects as its own role, which \`paddock up\` creates with this URL.`, { cause: err });
      }
      throw err;
    }
    return new Map(roles.map(({ service, password }) => [service, serviceDatabaseUrl(adminUrl, service, password)]));
  }

  async #ensureNats(): Promise<string> {
    const { natsDir, natsPort, home } = this.#config;
    const url = `nats://127.0.0.1:${natsPort}`;
    if (await canConnect('127.0.0.1', natsPort)) {
      this.#say(`using the NATS server that already listens on ${url} (it must accept the services' keys in ${join(planeDir(home), 'nats')})`);
      return url;
    }
    await mkdir(natsDir, { recursive: true });
    // One NKey user per service, allowed only the subjects the registry gives it, and no anonymous access.
    // The config is written at every start, so the permissions always match the code being started.
    const users = await Promise.all(NATS_USERS.map(async (user) => ({ user, publicKey: (await ensureNatsIdentity(natsKeyFile(home, user))).publicKey })));
    const configFile = join(planeDir(home), 'nats', 'nats-server.conf');
    await writeFile(configFile, natsServerConfig({ host: '127.0.0.1', port: natsPort, storeDir: natsDir, users }), { mode: 0o600 });
    this.#say(`starting nats-server on port ${natsPort} (JetStream in ${natsDir}, log in ${this.#logs.path('nats')})`);
    let ready = false;
    let failure: Error | undefined;
    this.#nats = Supervised.start(
      {
        name: 'nats',
        command: 'nats-server',
        args: ['-c', configFile],
        env: this.#ctx.env,
      },
      {
        hooks: this.#infraHooks({
          label: 'nats-server',
          logName: 'nats',
          isReady: () => ready,
          fail: (err) => (failure = err),
          notFoundHint: 'install it (apt-get install nats-server), or set NATS_URL to a running NATS server',
        }),
      },
    );
    await waitUntil(
      async () => {
        if (failure !== undefined) throw failure;
        return canConnect('127.0.0.1', natsPort, 500);
      },
      { intervalMs: PORT_POLL_MS, signal: this.#shutdown.signal },
    );
    ready = true;
    return url;
  }

  /** PostgreSQL and NATS: output to their log file only; an exit before they are ready fails `up`, after it they are restarted. */
  #infraHooks(opts: {
    label: string;
    logName: string;
    isReady: () => boolean;
    fail: (err: Error) => void;
    onStdout?: (line: string) => void;
    notFoundHint?: string;
  }): SupervisorHooks {
    const { label, logName, isReady, fail, onStdout, notFoundHint } = opts;
    const logPath = this.#logs.path(logName);
    return {
      onLine: (stream, line) => {
        if (stream === 'stdout' && onStdout !== undefined) onStdout(line);
        else this.#logs.write(logName, line);
      },
      onExit: (exit) => {
        if (!isReady()) {
          const tail = this.#logs.tail(logName).map((line) => `  ${line}`).join('\n');
          fail(new CommandError(`${label} did not start (${describeExit(exit)}); ${logPath} ends with:\n${tail}`));
        } else {
          this.#say(`${label} exited (${describeExit(exit)}); restarting it in ${seconds(exit.restartInMs)}`);
        }
      },
      onSpawnError: (err) => {
        const why = err.code === 'ENOENT' && notFoundHint !== undefined ? `it is not on PATH: ${notFoundHint}` : err.message;
        fail(new CommandError(`cannot start ${label}: ${why}`, { cause: err }));
      },
    };
  }

  async #startServices(databaseUrls: ReadonlyMap<string, string>, natsUrl: string): Promise<void> {
    const { repoRoot, home, httpHost, httpPort, xdsPort, ingressPort, bridgePort, billingPort, brokerRelayPort, llmProxySocket } = this.#config;
    // The services call each other over mutual TLS only: their certificates (and the spec key) must be
    // there before the first of them starts. Made at the first start, renewed when near their end.
    const plane = await ensurePki(planeDir(home));
    for (const name of this.#config.services) await ensureNatsIdentity(natsKeyFile(home, name));
    if (plane.issued.length > 0) this.#say(`the plane's certificates in ${plane.dir}: issued ${plane.issued.join(', ')}`);
    const env: Record<string, string | undefined> = {
      ...this.#ctx.env,
      PADDOCK_HOME: home,
      NATS_URL: natsUrl,
      PADDOCK_HOST: httpHost,
      PADDOCK_PORT: String(httpPort),
      PADDOCK_XDS_PORT: String(xdsPort),
      PADDOCK_XDS_URL: `127.0.0.1:${xdsPort}`,
      PADDOCK_INGRESS_PORT: String(ingressPort),
      PADDOCK_BRIDGE_PORT: String(bridgePort),
      PADDOCK_BILLING_PORT: String(billingPort),
      PADDOCK_BROKER_RELAY_PORT: String(brokerRelayPort),
      // Envoy asks the ingress who may reach each URL (ext_authz); with no ingress, nobody may.
      ...(ingressPort === 0 ? {} : { PADDOCK_XDS_EDGE_AUTHZ: `127.0.0.1:${ingressPort}` }),
      PADDOCK_BILLING_URL: `127.0.0.1:${billingPort}`,
      PADDOCK_LLM_PROXY_SOCKET: llmProxySocket,
      // Inside every instance, 127.0.0.1:4000 leads to billing's metering proxy (PADDOCK_LLM_PROXY_URL).
      PADDOCK_RELAY_ENDPOINTS: [this.#ctx.env['PADDOCK_RELAY_ENDPOINTS'], `llm=4000:${llmProxySocket}`].filter((e) => e !== undefined && e !== '').join(','),
    };
    for (const name of this.#config.services) {
      const prefix = `[${name}]`.padEnd(this.#prefixWidth);
      this.#services.push(
        Supervised.start(
          {
            name,
            command: this.#ctx.nodePath,
            args: [serviceMain(repoRoot, name)],
            // Each its own port: a PADDOCK_METRICS_PORT in up's environment would make all three ask for one.
            // Its own DATABASE_URL, or none: a service without tables gets no way into the database.
            env: {
              ...env,
              DATABASE_URL: databaseUrls.get(name),
              NATS_NKEY_FILE: natsKeyFile(home, name),
              PADDOCK_NATS_USER: name,
              PADDOCK_METRICS_PORT: String(this.#config.metricsPorts[name] ?? 0),
            },
            cwd: repoRoot,
          },
          {
            hooks: {
              onLine: (stream, line) => {
                this.#logs.write(name, line);
                const out = stream === 'stdout' ? this.#ctx.stdout : this.#ctx.stderr;
                out.write(`${formatLogLine(line).split('\n').map((part) => `${prefix} ${part}`).join('\n')}\n`);
              },
              onExit: (exit) => this.#say(`${name} exited (${describeExit(exit)}); restarting it in ${seconds(exit.restartInMs)}`),
              onSpawnError: (err, restartInMs) => this.#say(`cannot start ${name}: ${err.message}; trying again in ${seconds(restartInMs)}`),
            },
          },
        ),
      );
    }
  }

  async #waitHealthy(): Promise<void> {
    const healthUrl = `${this.#config.publicUrl}/healthz`;
    const notice = setTimeout(() => this.#say(`still waiting for ${healthUrl} to answer 200; see the gateway's lines above`), SLOW_START_NOTICE_MS);
    try {
      await waitUntil(
        async () => {
          try {
            const response = await fetch(healthUrl, { signal: AbortSignal.timeout(2_000) });
            await response.body?.cancel();
            return response.status === 200;
          } catch {
            return false;
          }
        },
        { intervalMs: HEALTH_POLL_MS, signal: this.#shutdown.signal },
      );
    } finally {
      clearTimeout(notice);
    }
  }

  async #stopAll(): Promise<void> {
    const { serviceStopGraceMs, infraStopGraceMs } = this.#config;
    if (this.#services.length > 0) {
      const stopped = await Promise.all(this.#services.map((proc) => proc.stop(serviceStopGraceMs)));
      for (const result of stopped) {
        if (result.forced) this.#say(`${result.name} was killed (it did not stop within ${seconds(serviceStopGraceMs)})`);
      }
    }
    for (const [label, proc] of [['nats-server', this.#nats], ['PostgreSQL', this.#postgres]] as const) {
      if (proc === undefined) continue;
      this.#say(`stopping ${label}`);
      const result = await proc.stop(infraStopGraceMs);
      if (result.forced) this.#say(`${label} was killed`);
    }
    this.#say('stopped');
  }
}

function serviceMain(repoRoot: string, name: string): string {
  return join(repoRoot, 'services', name, 'dist', 'src', 'main.js');
}

/** Whether a live PostgreSQL server of `dir` (by its postmaster.pid: pid on line 1, port on line 4) holds `port`. */
async function serverOnDataDir(dir: string, port: number): Promise<boolean> {
  const lock = (await readFile(join(dir, 'data', 'postmaster.pid'), 'utf8').catch(() => '')).split('\n');
  const pid = Number(lock[0]);
  if (!Number.isInteger(pid) || pid <= 0 || Number(lock[3]) !== port) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it runs, as another user (PostgreSQL runs as `postgres` when Paddock runs as root).
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseUrlLine(line: string): string | undefined {
  try {
    const parsed = JSON.parse(line) as { url?: unknown };
    return typeof parsed.url === 'string' ? parsed.url : undefined;
  } catch {
    return undefined;
  }
}

function describeExit(exit: Exit): string {
  return exit.code !== null ? `exit status ${exit.code}` : `signal ${exit.signal ?? 'unknown'}`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
}
