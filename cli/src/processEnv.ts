import type { Env } from '@paddock/config';

/** An Env as child_process wants it: unset variables left out. */
export function processEnv(env: Env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined) out[key] = value;
  return out;
}
