import { readFile } from 'node:fs/promises';
import { adminTokenFile, commonConfig, EnvReader, type Env } from '@paddock/config';
import { CommandError } from './errors.js';

export interface ClientConfig {
  /** Without a trailing slash. */
  readonly baseUrl: string;
  readonly token: string;
}

/** PADDOCK_URL (default http://127.0.0.1:$PADDOCK_PORT) and PADDOCK_TOKEN, else the admin token `paddock up` left in PADDOCK_HOME. */
export async function clientConfig(env: Env): Promise<ClientConfig> {
  const read = new EnvReader(env);
  const port = read.int('PADDOCK_PORT', 7070, { min: 1, max: 65535 });
  const baseUrl = read.string('PADDOCK_URL', `http://127.0.0.1:${port}`).replace(/\/+$/, '');
  let token = read.optional('PADDOCK_TOKEN');
  if (token === undefined) {
    const file = adminTokenFile(commonConfig(env).home);
    try {
      token = (await readFile(file, 'utf8')).trim();
    } catch (err) {
      throw new CommandError(`no API token: set PADDOCK_TOKEN, or start Paddock with \`paddock up\`, which keeps the admin token in ${file}`, { cause: err });
    }
    if (token === '') throw new CommandError(`no API token: ${file} is empty; set PADDOCK_TOKEN`);
  }
  return Object.freeze({ baseUrl, token });
}
