import { ExecutionKind, ExecutionSpec, NetworkMode } from '@paddock/proto';

/** A complete spec, as the gateway hands it on, for a shell job. */
export function shellSpec(command: string, spec: Partial<ExecutionSpec> = {}): ExecutionSpec {
  return ExecutionSpec.fromPartial({
    kind: ExecutionKind.EXECUTION_KIND_SHELL,
    command,
    cpuMillis: 1000,
    memoryBytes: 256 * 1024 * 1024,
    timeoutMs: 30_000,
    network: NetworkMode.NETWORK_MODE_NONE,
    ...spec,
  });
}
