import type { ExecutionSpec } from '@paddock/proto';
import type { SpecKey } from './specKey.js';

interface Sealed {
  env: Record<string, string>;
  repoToken: string;
}

function associated(executionId: string): string {
  return `paddock.spec.v1/${executionId}`;
}

/**
 * Moves what may be secret out of a spec before it leaves the gateway: the env values (provider keys, the
 * user's secrets) and the repository token go into `sealed`, which only a holder of the spec key opens
 * (the broker, at the last moment). The bus and the scheduler's tables then never hold them in clear.
 */
export function sealSpec(spec: ExecutionSpec, key: SpecKey, executionId: string): ExecutionSpec {
  const secret: Sealed = { env: spec.env, repoToken: spec.agent?.repoToken ?? '' };
  if (Object.keys(secret.env).length === 0 && secret.repoToken === '') return spec;
  return {
    ...spec,
    env: {},
    agent: spec.agent ? { ...spec.agent, repoToken: '' } : undefined,
    sealed: key.seal(JSON.stringify(secret), associated(executionId)),
  };
}

/** The spec as the gateway accepted it, for the container; a spec with nothing sealed is returned as it is. */
export function unsealSpec(spec: ExecutionSpec, key: SpecKey, executionId: string): ExecutionSpec {
  if (spec.sealed.length === 0) return spec;
  const secret = JSON.parse(key.open(Buffer.from(spec.sealed), associated(executionId))) as Sealed;
  return {
    ...spec,
    env: { ...spec.env, ...secret.env },
    agent: spec.agent ? { ...spec.agent, repoToken: secret.repoToken } : undefined,
    sealed: Buffer.alloc(0),
  };
}
