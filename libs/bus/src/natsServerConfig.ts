import { isNatsUser, NATS_USERS, natsPermissions, type NatsUser } from './natsPermissions.js';

export interface NatsServerConfigOptions {
  /** The address nats-server listens on, e.g. 127.0.0.1. */
  readonly host: string;
  readonly port: number;
  /** Where JetStream keeps its streams. */
  readonly storeDir: string;
  /** The users that may connect, each by the public key of its nkey (`U…`); no one else can. */
  readonly users: ReadonlyArray<{ readonly user: NatsUser; readonly publicKey: string }>;
}

/** A public user nkey: `U` and 55 more base32 characters. */
const USER_PUBLIC_KEY = /^U[A-Z2-7]{55}$/;

/**
 * A value as nats-server's config reads it: always a double-quoted string, so that `$JS.…` is not taken
 * for a variable and a path with spaces stays one value. Quotes, backslashes and control characters are
 * refused rather than escaped: nothing Paddock writes here needs them.
 */
function quoted(value: string, what: string): string {
  if (/["\\\u0000-\u001f\u007f]/.test(value)) throw new Error(`nats-server config: ${what} ${JSON.stringify(value)} has a quote, backslash or control character`);
  return `"${value}"`;
}

function list(values: readonly string[], indent: string): string {
  return `[\n${values.map((v) => `${indent}  ${quoted(v, 'subject')}`).join('\n')}\n${indent}]`;
}

/**
 * The text of a nats-server (2.9 or later) config file, for `nats-server -c FILE`: JetStream stored in
 * `storeDir`, listening on `host:port`, and one user per entry of `users`, authenticated by its nkey and
 * allowed only what the subject registry gives it (`natsPermissions`). There is no anonymous access: a
 * connection without one of these keys is refused.
 */
export function natsServerConfig(opts: NatsServerConfigOptions): string {
  if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) throw new Error(`nats-server config: port must be 1-65535, got ${opts.port}`);
  if (opts.host === '') throw new Error('nats-server config: host is empty');
  if (opts.storeDir === '') throw new Error('nats-server config: storeDir is empty');
  if (opts.users.length === 0) throw new Error('nats-server config: no users: nobody could connect');
  const users = new Set<string>();
  const keys = new Set<string>();
  for (const { user, publicKey } of opts.users) {
    if (!isNatsUser(user)) throw new Error(`nats-server config: unknown user "${String(user)}": expected one of ${NATS_USERS.join(', ')}`);
    if (!USER_PUBLIC_KEY.test(publicKey)) throw new Error(`nats-server config: the key of ${user} is not a public user nkey (U followed by 55 base32 characters): ${JSON.stringify(publicKey)}`);
    if (users.has(user)) throw new Error(`nats-server config: user ${user} is listed twice`);
    // nats-server would let the key in with only one of the two users' permissions.
    if (keys.has(publicKey)) throw new Error(`nats-server config: ${user} has the key of another user`);
    users.add(user);
    keys.add(publicKey);
  }
  const entries = opts.users.map(({ user, publicKey }) => {
    const p = natsPermissions(user);
    return [
      `    # ${user}`,
      '    {',
      `      nkey: ${quoted(publicKey, 'nkey')}`,
      '      permissions: {',
      `        publish: { allow: ${list(p.publish.allow, '        ')} }`,
      `        subscribe: { allow: ${list(p.subscribe.allow, '        ')} }`,
      '      }',
      '    }',
    ].join('\n');
  });
  return [
    "# nats-server config written by Paddock: each service's permissions come from the subject registry of",
    '# @paddock/bus. Changes by hand are lost the next time it is written.',
    `host: ${quoted(opts.host, 'host')}`,
    `port: ${opts.port}`,
    'jetstream {',
    `  store_dir: ${quoted(opts.storeDir, 'storeDir')}`,
    '}',
    'authorization {',
    '  users = [',
    entries.join('\n'),
    '  ]',
    '}',
    '',
  ].join('\n');
}
