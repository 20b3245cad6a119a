import { PaddockError } from '@paddock/errors';

/** A request asks for something that would let its container out of its box; never a schema detail. */
export class UnsafeRequestError extends PaddockError {
  constructor(
    /** The field of the request that asked for it. */
    readonly field: string,
    message: string,
  ) {
    super('not_allowed', 400, message);
    this.name = 'UnsafeRequestError';
  }
}

const WHY = 'every Paddock container runs as uid 1000 with no capabilities, in its own namespaces, with nothing of the host inside';

/**
 * What Docker's and Kubernetes' users ask for to get out of the box, by the names they know it by, with
 * what to do instead. Checked before the schema, so such a request is refused with its reason rather than
 * as an unknown field.
 */
const REFUSED: readonly { readonly fields: readonly string[]; readonly refused: (value: unknown) => boolean; readonly message: string }[] = [
  { fields: ['privileged'], refused: (v) => v !== false, message: `privileged containers are not allowed: ${WHY}` },
  {
    fields: ['mounts', 'volumes', 'binds', 'hostPath'],
    refused: () => true,
    message: `host mounts are not allowed: ${WHY}. Send files with "files" (they land in /workspace) or clone a repository with "repo"`,
  },
  {
    fields: ['capAdd', 'cap_add', 'capabilities', 'addCapabilities'],
    refused: () => true,
    message: `added capabilities are not allowed: ${WHY}`,
  },
  { fields: ['devices', 'device', 'gpus'], refused: () => true, message: `device access is not allowed: ${WHY}` },
  { fields: ['pid', 'pidMode', 'hostPID'], refused: () => true, message: `the host's PID namespace is not allowed (and no other may be chosen): ${WHY}` },
  { fields: ['ipc', 'ipcMode', 'hostIPC', 'userns', 'usernsMode', 'uts', 'hostNetwork'], refused: () => true, message: `host namespaces are not allowed: ${WHY}` },
  { fields: ['securityOpt', 'seccomp', 'apparmor', 'user'], refused: () => true, message: `security options and the container's user are Paddock's to set: ${WHY}` },
];

/** Throws UnsafeRequestError naming the first field of `body` that asks to leave the box. */
export function refuseUnsafe(body: unknown): void {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return;
  const fields = body as Record<string, unknown>;
  for (const rule of REFUSED) {
    for (const field of rule.fields) {
      if (field in fields && rule.refused(fields[field])) throw new UnsafeRequestError(field, `"${field}": ${rule.message}`);
    }
  }
  if (fields['network'] === 'host') {
    throw new UnsafeRequestError('network', `"network": "host" is not allowed: ${WHY}. Ask for "none" (the default for jobs) or "bridge" (a network of the execution's own)`);
  }
  // The agent runtime and the container runtime are two fields: say which one was meant.
  if (fields['runtime'] === 'gvisor' || fields['runtime'] === 'runc' || fields['runtime'] === 'runsc') {
    throw new UnsafeRequestError('runtime', `"runtime" names the agent runtime (such as claude-code); to run under ${String(fields['runtime'])}, send "containerRuntime": "${fields['runtime'] === 'runc' ? 'runc' : 'gvisor'}"`);
  }
}
