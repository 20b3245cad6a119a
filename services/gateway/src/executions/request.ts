import { ValidationError } from '@paddock/errors';
import { ExecutionKind, NetworkMode, type ExecutionSpec } from '@paddock/proto';
import type { GatewayConfig } from '../config.js';
import type { ExecutionRequest } from './schemas.js';

/** A request with every default filled in: what is stored and shown. */
export interface NormalizedRequest {
  kind: 'shell' | 'python';
  command: string | null;
  script: string | null;
  files: Record<string, string>;
  env: Record<string, string>;
  image: string;
  resources: { cpus: number; memoryMb: number };
  timeoutS: number;
  network: 'none' | 'bridge';
}

const MAX_PATH = 4096;

function checkPath(path: string): void {
  const where = `files["${path}"]`;
  if (path.length === 0 || path.length > MAX_PATH) throw new ValidationError(`${where}: a path must have 1 to ${MAX_PATH} characters`);
  if (path.startsWith('/')) throw new ValidationError(`${where}: the path must be relative to /workspace, not absolute`);
  if (path.includes('\\') || path.includes('\0')) throw new ValidationError(`${where}: the path may not contain "\\" or NUL`);
  const parts = path.split('/');
  if (parts.some((p) => p === '..')) throw new ValidationError(`${where}: the path may not contain ".." (it must stay inside /workspace)`);
  if (parts.some((p) => p === '' || p === '.')) throw new ValidationError(`${where}: the path has an empty or "." segment`);
}

/** Checks what JSON Schema cannot (kind-specific fields, paths, limits) and fills the defaults. */
export function normalizeRequest(body: ExecutionRequest, config: GatewayConfig): NormalizedRequest {
  if (body.kind === 'shell') {
    if (body.command === undefined) throw new ValidationError('a shell execution needs "command"');
    if (body.script !== undefined) throw new ValidationError('a shell execution takes "command", not "script"');
  } else {
    if (body.script === undefined) throw new ValidationError('a python execution needs "script"');
    if (body.command !== undefined) throw new ValidationError('a python execution takes "script", not "command"');
  }
  const files = body.files ?? {};
  Object.keys(files).forEach(checkPath);
  const cpus = body.resources?.cpus ?? config.defaults.cpus;
  const memoryMb = body.resources?.memoryMb ?? config.defaults.memoryMb;
  const timeoutS = body.timeoutS ?? config.defaults.timeoutS;
  if (cpus > config.limits.maxCpus) throw new ValidationError(`resources.cpus may be at most ${config.limits.maxCpus}`);
  if (memoryMb > config.limits.maxMemoryMb) throw new ValidationError(`resources.memoryMb may be at most ${config.limits.maxMemoryMb}`);
  if (timeoutS > config.limits.maxTimeoutS) throw new ValidationError(`timeoutS may be at most ${config.limits.maxTimeoutS}`);
  return {
    kind: body.kind,
    command: body.command ?? null,
    script: body.script ?? null,
    files,
    env: body.env ?? {},
    image: body.image ?? config.defaults.image,
    resources: { cpus, memoryMb },
    timeoutS,
    network: body.network ?? 'none',
  };
}

export function toSpec(r: NormalizedRequest): ExecutionSpec {
  return {
    kind: r.kind === 'shell' ? ExecutionKind.EXECUTION_KIND_SHELL : ExecutionKind.EXECUTION_KIND_PYTHON,
    command: r.command ?? '',
    script: r.script ?? '',
    files: Object.fromEntries(Object.entries(r.files).map(([p, c]) => [p, Buffer.from(c, 'utf8')])),
    env: r.env,
    image: r.image,
    cpuMillis: Math.round(r.resources.cpus * 1000),
    memoryBytes: r.resources.memoryMb * 1024 * 1024,
    timeoutMs: r.timeoutS * 1000,
    network: r.network === 'bridge' ? NetworkMode.NETWORK_MODE_BRIDGE : NetworkMode.NETWORK_MODE_NONE,
    pidsLimit: 0,
  };
}
