import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './freePort.js';

export interface NatsServer {
  readonly url: string;
  /** Kills the server (SIGKILL) and starts it again on the same port and store (or an empty one: `wipe`). */
  restart(opts?: { wipe?: boolean }): Promise<void>;
  stop(): Promise<void>;
}

/**
 * How to run nats-server with users: @paddock/bus's `natsAuth` (passed in, so that the testkit depends on
 * no Paddock package). `U` is the users besides `admin`: Paddock's services.
 */
export interface NatsAuth<U extends string> {
  readonly users: readonly U[];
  /** The key kept in `file`, made there on the first call. */
  ensureIdentity(file: string): Promise<{ readonly seed: string; readonly publicKey: string }>;
  /** The text of nats-server's config file. */
  serverConfig(opts: {
    host: string;
    port: number;
    storeDir: string;
    users: ReadonlyArray<{ user: U | 'admin'; publicKey: string }>;
  }): string;
}

/** A user of a nats-server with authorization, in the shape `Bus.connect({ identity })` takes. */
export interface NatsUserIdentity<U extends string> {
  readonly user: U;
  readonly seed: string;
  readonly publicKey: string;
  /** The seed file, as a service reads it through NATS_NKEY_FILE. */
  readonly file: string;
}

export interface AuthorizedNatsServer<U extends string> extends NatsServer {
  /** The user that may do anything, for checks a test makes behind the services' backs. */
  readonly admin: NatsUserIdentity<'admin'>;
  /** The identity of one of the users (a service). */
  identityFor(user: U): NatsUserIdentity<U>;
  /** The config file the server runs with. */
  readonly configFile: string;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/**
 * A real nats-server with JetStream on a free port and a temporary store. Without options anyone may
 * connect; with `auth` it runs from the config that `auth` writes, each user (and `admin`) with a key of
 * its own made in the temporary directory, and refuses everyone else.
 */
export async function startNatsServer(): Promise<NatsServer>;
export async function startNatsServer<U extends string>(opts: { auth: NatsAuth<U> }): Promise<AuthorizedNatsServer<U>>;
export async function startNatsServer<U extends string>(opts?: { auth?: NatsAuth<U> }): Promise<NatsServer | AuthorizedNatsServer<U>> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'paddock-nats-'));
  const storeDir = join(dir, 'store');
  const auth = opts?.auth;
  let args = ['-js', '-sd', storeDir, '-a', '127.0.0.1', '-p', String(port)];
  let users: { admin: NatsUserIdentity<'admin'>; byName: Map<U, NatsUserIdentity<U>>; configFile: string } | undefined;
  try {
    if (auth) users = await writeAuthorization(auth, dir, storeDir, port);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  if (users) args = ['-c', users.configFile];

  let child: ChildProcess;
  const launch = async () => {
    await mkdir(storeDir, { recursive: true });
    child = spawn('nats-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    // What it says on stderr explains an exit at start (a config it cannot read, a port in use).
    let said = '';
    child.stderr!.on('data', (d: Buffer) => (said = (said + d.toString()).slice(-4000)));
    for (let i = 0; i < 100 && !(await portOpen(port)); i++) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nats-server ${args.join(' ')} exited at start (${child.exitCode ?? child.signalCode}):\n${said}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const kill = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await gone;
  };
  try {
    await launch();
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const server: NatsServer = {
    url: `nats://127.0.0.1:${port}`,
    restart: async (restartOpts = {}) => {
      await kill('SIGKILL');
      // The store only: the config and the users' keys stay.
      if (restartOpts.wipe) await rm(storeDir, { recursive: true, force: true });
      await launch();
    },
    stop: async () => {
      await kill('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
  if (!users) return server;
  const { admin, byName, configFile } = users;
  return {
    ...server,
    admin,
    configFile,
    identityFor: (user: U) => {
      const identity = byName.get(user);
      if (!identity) throw new Error(`no NATS user "${user}" on this server; its users are ${[...byName.keys()].join(', ')} and admin`);
      return identity;
    },
  };
}

/** A key per user and `admin` under `dir/users/`, and the config file that lets exactly them in. */
async function writeAuthorization<U extends string>(auth: NatsAuth<U>, dir: string, storeDir: string, port: number) {
  const keyOf = async <N extends string>(user: N): Promise<NatsUserIdentity<N>> => {
    const file = join(dir, 'users', `${user}.nk`);
    return { user, file, ...(await auth.ensureIdentity(file)) };
  };
  const admin = await keyOf('admin' as const);
  const byName = new Map<U, NatsUserIdentity<U>>();
  for (const user of auth.users) byName.set(user, await keyOf(user));
  const configFile = join(dir, 'nats.conf');
  const text = auth.serverConfig({
    host: '127.0.0.1',
    port,
    storeDir,
    users: [{ user: 'admin' as const, publicKey: admin.publicKey }, ...[...byName.values()].map(({ user, publicKey }) => ({ user, publicKey }))],
  });
  await writeFile(configFile, text, { mode: 0o600 });
  return { admin, byName, configFile };
}
