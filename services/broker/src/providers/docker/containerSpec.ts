import type { ContainerCreateOptions, MountSettings } from 'dockerode';
import { ContainerRuntime, ExecutionKind, NetworkMode, type ExecutionSpec } from '@paddock/proto';
import { findRuntime } from '@paddock/runtimes';
import { executionNetworkName } from './executionNetworks.js';
import { EGRESS_PROXY_ENV } from '../../egress/egressProxies.js';
import { labels } from './labels.js';
import { UnsupportedSpecError } from '../../provider/errors.js';
import { INSTANCE_SSH_PORT } from '../../provider/provider.js';

/** The unprivileged user every container runs as, whatever its kind (the base image's `agent`). */
export const JOB_USER = '1000:1000';
export const WORKSPACE = '/workspace';
/**
 * What the broker gives a run before it starts (a Python job's script; an agent's workflow, prompt and
 * secrets). Root-owned: the job reads it and cannot write it.
 */
export const RUN_DIR = '/opt/paddock/run';
export const SCRIPT_PATH = `${RUN_DIR}/main.py`;
export const SSH_PORT = INSTANCE_SSH_PORT;

/** What an agent container is given (see images/base/rootfs/opt/paddock/bin/paddock-entrypoint). */
export const AGENT = Object.freeze({
  entrypoint: '/opt/paddock/bin/paddock-entrypoint',
  workflow: `${RUN_DIR}/workflow.sh`,
  prompt: `${RUN_DIR}/prompt`,
  repoToken: `${RUN_DIR}/secrets/repo-token`,
  /** The SSH password as a SHA-512 crypt hash: sshd checks it; the password never enters the container. */
  sshPasswordHash: `${RUN_DIR}/secrets/ssh-password-hash`,
  /** The entrypoint's and its sshd's own files, written at run time. */
  stateDir: '/run/paddock',
});

const HOME = '/home/agent';
const MiB = 1024 * 1024;
/**
 * /tmp and $HOME each hold at most this share of the memory limit: tmpfs pages are charged to the
 * container's memory, and a full tmpfs should answer "No space left on device" rather than get the job
 * killed for memory.
 */
const TMPFS_SHARE_OF_MEMORY = 0.5;
const TMPFS_BYTES_WITHOUT_MEMORY_LIMIT = 1024 * MiB;
const STATE_TMPFS_BYTES = 16 * MiB;

/** Agents and services run under the base image's entrypoint: tmux session `agent`, sshd, the workflow. */
export function runsUnderEntrypoint(spec: ExecutionSpec): boolean {
  return spec.kind === ExecutionKind.EXECUTION_KIND_AGENT || spec.service;
}

/** sshd can be reached only from a container with a network (its port is published on the host). */
export function hasSsh(spec: ExecutionSpec): boolean {
  return runsUnderEntrypoint(spec) && spec.network === NetworkMode.NETWORK_MODE_BRIDGE;
}

/** Whether the broker puts files in RUN_DIR before the job starts. */
export function usesRunDir(spec: ExecutionSpec): boolean {
  return runsUnderEntrypoint(spec) || spec.kind === ExecutionKind.EXECUTION_KIND_PYTHON;
}

export interface ContainerSpecInput {
  readonly executionId: string;
  readonly ownerId: string;
  readonly brokerId: string;
  readonly spec: ExecutionSpec;
  readonly image: string;
  readonly pidsLimit: number;
  readonly deadlineMs: number;
  /** The host address SSH_PORT is published on, for instances with sshd (default 127.0.0.1). */
  readonly sshHost?: string;
  /** A folder of the host mounted at /workspace, when the broker keeps workspaces on its host. */
  readonly workspaceDir?: string;
  /**
   * The image is one of Paddock's (label `io.paddock.image`, which images derived from them inherit): its
   * root filesystem is then read-only, and what the broker puts in before the start goes into volumes
   * (see workspaceArchives). Any other image keeps a writable root filesystem, since many common images
   * write outside /tmp and $HOME; it still runs as uid 1000 with no capabilities.
   */
  readonly imageIsOurs: boolean;
  /**
   * Whether a bridged instance may reach ports of the host the broker allows (HostFirewall): it then
   * knows the host as host.docker.internal. Otherwise the name does not resolve at all.
   */
  readonly hostReachable?: boolean;
}

/**
 * The engine's runtime for a spec: `runsc` is gVisor as scripts/setup.sh registers it. A value this broker
 * does not know (a newer gateway's) is refused rather than run under a weaker runtime.
 */
export function dockerRuntimeOf(spec: ExecutionSpec): 'runc' | 'runsc' {
  switch (spec.containerRuntime) {
    case undefined:
    case ContainerRuntime.CONTAINER_RUNTIME_UNSPECIFIED:
    case ContainerRuntime.CONTAINER_RUNTIME_RUNC:
      return 'runc';
    case ContainerRuntime.CONTAINER_RUNTIME_GVISOR:
      return 'runsc';
    default:
      throw new UnsupportedSpecError(`unknown container runtime ${spec.containerRuntime}: this broker runs runc and gVisor`);
  }
}

function command(spec: ExecutionSpec): string[] {
  if (runsUnderEntrypoint(spec)) return [AGENT.entrypoint];
  switch (spec.kind) {
    case ExecutionKind.EXECUTION_KIND_SHELL:
      return ['/bin/sh', '-c', spec.command];
    case ExecutionKind.EXECUTION_KIND_PYTHON:
      return ['python3', '-u', SCRIPT_PATH];
    default:
      throw new Error(`unsupported execution kind ${spec.kind}`);
  }
}

function tmpfsBytes(spec: ExecutionSpec): number {
  return spec.memoryBytes > 0 ? Math.floor(spec.memoryBytes * TMPFS_SHARE_OF_MEMORY) : TMPFS_BYTES_WITHOUT_MEMORY_LIMIT;
}

/**
 * The writable places of a container: tmpfs for /tmp and $HOME when the root filesystem is read-only
 * (agent CLIs keep their settings and caches under $HOME: ~/.claude, ~/.config, ~/.npm, ~/.cache...), and
 * the entrypoint's state, which its user must own whatever the root filesystem is.
 */
function tmpfsOf(spec: ExecutionSpec, readOnlyRoot: boolean): Record<string, string> {
  const tmpfs: Record<string, string> = {};
  if (readOnlyRoot) {
    const size = tmpfsBytes(spec);
    tmpfs['/tmp'] = `rw,exec,nosuid,nodev,mode=1777,size=${size}`;
    tmpfs[HOME] = `rw,exec,nosuid,nodev,uid=1000,gid=1000,mode=0755,size=${size}`;
  }
  if (runsUnderEntrypoint(spec)) tmpfs[AGENT.stateDir] = `rw,noexec,nosuid,nodev,uid=1000,gid=1000,mode=0700,size=${STATE_TMPFS_BYTES}`;
  return tmpfs;
}

/**
 * Volumes where the broker puts files before the start (the engine writes into a created container only
 * there once its root filesystem is read-only; a tmpfs exists only while it runs). Each is the image's
 * directory copied (with its owner) into a fresh volume, removed with the container.
 */
function volumesOf(input: ContainerSpecInput, readOnlyRoot: boolean): MountSettings[] {
  if (!readOnlyRoot) return [];
  const targets = [...(input.workspaceDir === undefined ? [WORKSPACE] : []), ...(usesRunDir(input.spec) ? [RUN_DIR] : [])];
  return targets.map((target) => ({
    Type: 'volume',
    Source: '',
    Target: target,
    VolumeOptions: {
      NoCopy: false,
      Labels: { [labels.executionId]: input.executionId, [labels.owner]: input.ownerId, [labels.brokerId]: input.brokerId },
      DriverConfig: { Name: 'local', Options: {} },
    },
  }));
}

/**
 * A fresh container for one execution: the job is its main process (under Docker's init, which forwards
 * signals and reaps). Whatever its kind (shell, Python, agent, service) it runs as uid 1000 from its
 * first instruction, with every capability dropped, no privilege escalation, Docker's default seccomp
 * profile, CPU, memory and pid limits, no network unless asked, and a read-only root filesystem when the
 * image is Paddock's: Kubernetes' "restricted" Pod Security (runAsNonRoot, allowPrivilegeEscalation false,
 * capabilities drop ALL, seccomp RuntimeDefault, readOnlyRootFilesystem). A bridged one is alone on its
 * execution's own network (ExecutionNetworks), never on Docker's shared default bridge. Under gVisor
 * (runsc) the same settings apply inside the sandbox.
 */
export function containerSpec(input: ContainerSpecInput): ContainerCreateOptions {
  const { spec } = input;
  const bridge = spec.network === NetworkMode.NETWORK_MODE_BRIDGE;
  const agent = spec.kind === ExecutionKind.EXECUTION_KIND_AGENT ? spec.agent : undefined;
  if (spec.kind === ExecutionKind.EXECUTION_KIND_AGENT && (!agent || !findRuntime(agent.runtime))) {
    throw new Error(`unknown agent runtime "${agent?.runtime ?? ''}"`);
  }
  if (bridge && spec.egress.length > 0) {
    throw new UnsupportedSpecError('an execution with an egress allowlist has no network but its egress proxy; "network": "bridge" is the open choice, without an allowlist');
  }
  const entrypoint = runsUnderEntrypoint(spec);
  const ssh = hasSsh(spec);
  const readOnlyRoot = input.imageIsOurs === true;
  const volumes = volumesOf(input, readOnlyRoot);
  return {
    name: `paddock-${input.executionId}`,
    Image: input.image,
    Cmd: command(spec),
    Entrypoint: [],
    User: JOB_USER,
    WorkingDir: WORKSPACE,
    Env: [
      `HOME=${HOME}`,
      'PYTHONUNBUFFERED=1',
      // Docker's init (tini) then signals the job's whole process group, not just its first process.
      'TINI_KILL_PROCESS_GROUP=1',
      `PADDOCK_EXECUTION_ID=${input.executionId}`,
      ...(entrypoint ? ['TERM=xterm-256color', `PADDOCK_WORKFLOW=${AGENT.workflow}`, ...(spec.service ? ['PADDOCK_IDLE=1'] : [])] : []),
      ...(agent
        ? [
            `PADDOCK_RUNTIME=${agent.runtime}`,
            `PADDOCK_PROMPT_FILE=${AGENT.prompt}`,
            ...(agent.repoUrl ? [`PADDOCK_REPO_URL=${agent.repoUrl}`] : []),
            ...(agent.repoBranch ? [`PADDOCK_REPO_BRANCH=${agent.repoBranch}`] : []),
            ...(agent.repoToken ? [`PADDOCK_REPO_TOKEN_FILE=${AGENT.repoToken}`] : []),
          ]
        : []),
      // Before the request's own env, which may extend NO_PROXY: with no network the proxy is the only way out anyway.
      ...(spec.egress.length > 0 ? EGRESS_PROXY_ENV : []),
      ...Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    ],
    Labels: {
      [labels.executionId]: input.executionId,
      [labels.owner]: input.ownerId,
      [labels.brokerId]: input.brokerId,
      [labels.deadlineMs]: String(input.deadlineMs),
      [labels.diskBytes]: String(spec.diskBytes),
    },
    ...(ssh ? { ExposedPorts: { [`${SSH_PORT}/tcp`]: {} } } : {}),
    AttachStdout: true,
    AttachStderr: true,
    AttachStdin: false,
    OpenStdin: false,
    Tty: false,
    HostConfig: {
      Init: true,
      Runtime: dockerRuntimeOf(spec),
      NetworkMode: bridge ? executionNetworkName(input.executionId) : 'none',
      ...(bridge && input.hostReachable === true ? { ExtraHosts: ['host.docker.internal:host-gateway'] } : {}),
      ...(ssh ? { PortBindings: { [`${SSH_PORT}/tcp`]: [{ HostIp: input.sshHost ?? '127.0.0.1', HostPort: '' }] } } : {}),
      ...(input.workspaceDir ? { Binds: [`${input.workspaceDir}:${WORKSPACE}:rw`] } : {}),
      ...(volumes.length > 0 ? { Mounts: volumes } : {}),
      ReadonlyRootfs: readOnlyRoot,
      Tmpfs: tmpfsOf(spec, readOnlyRoot),
      CapDrop: ['ALL'],
      // Docker's default seccomp profile applies: nothing here may set seccomp=unconfined.
      SecurityOpt: ['no-new-privileges'],
      NanoCpus: spec.cpuMillis * 1_000_000,
      Memory: spec.memoryBytes,
      MemorySwap: spec.memoryBytes,
      PidsLimit: spec.pidsLimit || input.pidsLimit,
      LogConfig: { Type: 'json-file', Config: { 'max-size': '64m', 'max-file': '1' } },
      AutoRemove: false,
    },
  };
}
