import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '@paddock/telemetry';
import type { UserStore } from './userStore.js';

/**
 * The first start creates the admin and writes its token to the admin-token file (mode 0600). If that
 * file is gone later, a new admin token is issued, since the stored hash cannot be turned back into one.
 */
export async function ensureAdmin(users: UserStore, file: string, log: Logger): Promise<void> {
  const admin = await users.admin();
  if (admin && existsSync(file)) return;
  const token = admin ? await users.rotate(admin.id) : (await users.create('admin', true)).token;
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${token}\n`, { mode: 0o600 });
  await rename(tmp, file);
  log.info({ file }, admin ? 'admin token file was missing: issued a new admin token' : 'created the admin user');
}
