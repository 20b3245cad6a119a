import { ValidationError } from '@paddock/errors';
import { ContainerRuntime, ExecutionKind, NetworkMode, type ExecutionSpec } from '@paddock/proto';
import { findRuntime } from '@paddock/runtimes';
import type { GatewayConfig } from '../config.js';
import { placeInputs, type PlacedInputs } from './inputs.js';
import { isLlmWiringName } from './llmAccess.js';
import { RUN_TOKEN_ENV } from './runTokens.js';
import type { ContainerRuntimeName, ExecutionRequest, Kind } from './schemas.js';

/** A request with every default filled in: what is stored and shown (but for secrets: see ExecutionStore). */
export interface NormalizedRequest {
  kind: Kind;
  command: string | null;
  script: string | null;
  runtime: string | null;
  prompt: string | null;
  repo: { url: string; branch: string | null; token: string | null } | null;
  files: Record<string, string>;
  env: Record<string, string>;
  image: string;
  /** diskMb 0: no limit on /workspace. */
  resources: { cpus: number; memoryMb: number; diskMb: number };
  timeoutS: number;
  network: 'none' | 'bridge';
  service: boolean;
  containerRuntime: ContainerRuntimeName;
  /** Names of the owner's stored secrets that enter the environment; no other does. */
  secrets: string[];
  /** Hosts reached through Paddock's egress proxy, and no others; empty for none (rows stored before it have none). */
  egress?: string[];
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

const EGRESS_LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
/** `host`, `host:port` or `*.domain[:port]`: a name of DNS labels or an IPv4 address (the broker checks the same). */
const EGRESS_ENTRY = new RegExp(`^(?:\\*\\.${EGRESS_LABEL}(?:\\.${EGRESS_LABEL})+|${EGRESS_LABEL}(?:\\.${EGRESS_LABEL})*)(?::([0-9]{1,5}))?$`);

/** The request's egress allowlist, lowercase; a 400 names the first entry that is not a host. */
function checkEgress(body: ExecutionRequest): string[] {
  const egress = (body.egress ?? []).map((entry) => entry.trim().toLowerCase());
  for (const [i, entry] of egress.entries()) {
    const port = EGRESS_ENTRY.exec(entry)?.[1];
    const host = entry.replace(/:[0-9]+$/, '');
    if (!EGRESS_ENTRY.test(entry) || host.length > 253 || (port !== undefined && (Number(port) < 1 || Number(port) > 65535))) {
      throw new ValidationError(`egress entry "${body.egress?.[i] ?? entry}" is not a host: write "host", "host:port" or "*.domain" (its subdomains), e.g. "pypi.org", "github.com:443", "*.npmjs.org"`);
    }
  }
  if (egress.length > 0 && body.network === 'bridge') {
    throw new ValidationError('"egress" and "network": "bridge" contradict each other: bridge is the open internet; an allowlist gives no network but Paddock\'s egress proxy. Drop one of them');
  }
  return egress;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Checks what JSON Schema cannot (kind-specific fields, paths, limits) and fills the defaults. */
export function normalizeRequest(body: ExecutionRequest, config: GatewayConfig): NormalizedRequest {
  const only = (allowed: readonly (keyof ExecutionRequest)[]) => {
    for (const field of ['command', 'script', 'runtime', 'prompt', 'repo'] as const) {
      if (body[field] !== undefined && !allowed.includes(field)) throw new ValidationError(`${body.kind === 'agent' ? 'an' : 'a'} ${body.kind} execution does not take "${field}"`);
    }
  };
  if (body.kind === 'shell') {
    if (body.command === undefined) throw new ValidationError('a shell execution needs "command"');
    only(['command']);
  } else if (body.kind === 'python') {
    if (body.script === undefined) throw new ValidationError('a python execution needs "script"');
    only(['script']);
  } else {
    if (body.prompt === undefined) throw new ValidationError('an agent execution needs "prompt"');
    only(['runtime', 'prompt', 'repo']);
  }
  const runtime = body.kind === 'agent' ? findRuntime(body.runtime ?? config.defaults.runtime) : undefined;
  if (body.kind === 'agent' && runtime === undefined) throw new ValidationError(`no agent runtime "${body.runtime ?? config.defaults.runtime}"`);
  const files = body.files ?? {};
  Object.keys(files).forEach(checkPath);
  // Checked here rather than with `propertyNames`, which OpenAPI 3.0 schemas do not have.
  for (const name of Object.keys(body.env ?? {})) {
    if (!ENV_NAME.test(name)) throw new ValidationError(`env has a key "${name}" that must match ${ENV_NAME.source} (letters, digits and _, not first a digit)`);
    if (name === RUN_TOKEN_ENV) throw new ValidationError(`env may not set ${RUN_TOKEN_ENV}: Paddock puts the execution's own run token there`);
  }
  if (body.secrets?.includes(RUN_TOKEN_ENV)) throw new ValidationError(`secrets may not name ${RUN_TOKEN_ENV}: Paddock puts the execution's own run token there`);
  for (const [field, names] of [['env', Object.keys(body.env ?? {})], ['secrets', body.secrets ?? []]] as const) {
    const wiring = names.find(isLlmWiringName);
    if (wiring !== undefined) {
      throw new ValidationError(
        `${field} may not set ${wiring}: Paddock's LLM metering proxy sets it, so that every call is counted and no provider key enters the container; ` +
          'give provider keys as OPENAI_API_KEY, ANTHROPIC_API_KEY or GEMINI_API_KEY, and the operator points the proxy at providers (PADDOCK_LLM_UPSTREAMS on billing)',
      );
    }
  }
  const egress = checkEgress(body);
  const cpus = body.resources?.cpus ?? config.defaults.cpus;
  const memoryMb = body.resources?.memoryMb ?? config.defaults.memoryMb;
  const diskMb = body.resources?.diskMb ?? config.defaults.diskMb;
  // A service lives until it is stopped: only the maximum bounds it, unless it asks for less.
  const timeoutS = body.timeoutS ?? (body.service ? config.limits.maxTimeoutS : config.defaults.timeoutS);
  // Docker counts CPUs in billionths but takes no less than 0.01; a zero share would mean no limit at all.
  if (cpus < 0.01) throw new ValidationError('resources.cpus must be at least 0.01');
  if (cpus > config.limits.maxCpus) throw new ValidationError(`resources.cpus may be at most ${config.limits.maxCpus}`);
  if (memoryMb > config.limits.maxMemoryMb) throw new ValidationError(`resources.memoryMb may be at most ${config.limits.maxMemoryMb}`);
  if (diskMb > config.limits.maxDiskMb) throw new ValidationError(`resources.diskMb may be at most ${config.limits.maxDiskMb}`);
  if (timeoutS > config.limits.maxTimeoutS) throw new ValidationError(`timeoutS may be at most ${config.limits.maxTimeoutS}`);
  return {
    kind: body.kind,
    command: body.command ?? null,
    script: body.script ?? null,
    runtime: runtime?.name ?? null,
    prompt: body.prompt ?? null,
    repo: body.repo ? { url: body.repo.url, branch: body.repo.branch ?? null, token: body.repo.token ?? null } : null,
    files,
    env: body.env ?? {},
    image: body.image ?? runtime?.image ?? config.defaults.image,
    resources: { cpus, memoryMb, diskMb },
    timeoutS,
    // An agent talks to its LLM provider: it gets a network unless the request says otherwise, or gives an
    // egress allowlist, whose proxy is then its only way out.
    network: body.network ?? (body.kind === 'agent' && egress.length === 0 ? 'bridge' : 'none'),
    service: body.service ?? false,
    containerRuntime: body.containerRuntime ?? config.defaults.containerRuntime,
    secrets: body.secrets ?? [],
    egress,
  };
}

const KINDS: Record<Kind, ExecutionKind> = {
  shell: ExecutionKind.EXECUTION_KIND_SHELL,
  python: ExecutionKind.EXECUTION_KIND_PYTHON,
  agent: ExecutionKind.EXECUTION_KIND_AGENT,
};

/**
 * The spec the scheduler and broker get; `secretEnv` (the stored secrets the request names) is under the
 * request's own env, and `paddockEnv` (the run token, the LLM wiring) over it.
 * Files and script are where `inputs` put them: inline, or by reference to the blob store.
 */
export function toSpec(
  r: NormalizedRequest,
  secretEnv: Record<string, string> = {},
  inputs: PlacedInputs = placeInputs(r),
  paddockEnv: Record<string, string> = {},
): ExecutionSpec {
  return {
    kind: KINDS[r.kind],
    command: r.command ?? '',
    script: inputs.script,
    files: inputs.files,
    env: { ...secretEnv, ...r.env, ...paddockEnv },
    image: r.image,
    cpuMillis: Math.round(r.resources.cpus * 1000),
    memoryBytes: r.resources.memoryMb * 1024 * 1024,
    timeoutMs: r.timeoutS * 1000,
    network: r.network === 'bridge' ? NetworkMode.NETWORK_MODE_BRIDGE : NetworkMode.NETWORK_MODE_NONE,
    containerRuntime: r.containerRuntime === 'gvisor' ? ContainerRuntime.CONTAINER_RUNTIME_GVISOR : ContainerRuntime.CONTAINER_RUNTIME_RUNC,
    pidsLimit: 0,
    service: r.service,
    sealed: Buffer.alloc(0),
    fileRefs: inputs.fileRefs,
    scriptRef: inputs.scriptRef,
    diskBytes: r.resources.diskMb * 1024 * 1024,
    egress: r.egress ?? [],
    agent:
      r.kind === 'agent'
        ? { runtime: r.runtime ?? '', prompt: r.prompt ?? '', repoUrl: r.repo?.url ?? '', repoBranch: r.repo?.branch ?? '', repoToken: r.repo?.token ?? '' }
        : undefined,
  };
}
