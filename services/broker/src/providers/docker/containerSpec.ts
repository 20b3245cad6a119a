import type { ContainerCreateOptions, HostConfig, MountSettings } from 'dockerode';
import { ContainerRuntime, ExecutionKind, NetworkMode, type ExecutionSpec } from '@paddock/proto';
import { findRuntime } from '@paddock/runtimes';
import { executionNetworkName } from './executionNetworks.js';
import { EGRESS_PROXY_ENV } from '../../egress/egressProxies.js';
import { labels } from './labels.js';
import { UnsupportedSpecError } from '../../provider/errors.js';
import { executionCgroupParent } from '../../usage/executionCgroup.js';

/** The unprivileged user every container runs as, whatever its kind (the base image's `agent`). */
export const JOB_USER = '1000:1000';
export const WORKSPACE = '/workspace';
/**
 * What the broker gives a run before it starts (a Python job's script; an agent's workflow, prompt and
 * secrets). Root-owned: the job reads it and cannot write it.
 */
export const RUN_DIR = '/opt/paddock/run';
export const SCRIPT_PATH = `${RUN_DIR}/main.py`;

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
  /** Processes and threads the job may have at once, when the spec sets none (see processLimits). */
  readonly pidsLimit: number;
  readonly deadlineMs: number;
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

/**
 * gVisor's sandbox runs every process of the instance in its own kernel (the Sentry), but with the default
 * ptrace platform each of those processes also costs the host a tracee process, with one host thread for
 * every Sentry thread that has run it: the sandbox's host tasks are not the job's processes. Measured on a
 * 2-core host (runsc 2022-12, ptrace) in the instance's pids cgroup: about 50 for the sandbox itself (gofer,
 * Sentry, Docker's init) once idle; a fork bomb of sleeping processes stopped at N processes about 50 + 5.3 N
 * (381 for 64, 2726 for 512); threads of one process about one each (62 threads, 63 tasks); but 30 processes
 * all busy in system calls climb to 1000 within 40 s, and 60 of them past 2500, since each process's tracee
 * grows towards the Sentry's thread count (36 for 8 busy processes, 79 for 30). A pids cgroup at the job's
 * limit therefore stops the sandbox from starting (64), and one sized "sandbox + limit" is met by the
 * Sentry's own threads before the job's fork: the sandbox dies (exit 2, saying nothing) instead of fork()
 * failing inside it.
 *
 * So under gVisor the job's limit is RLIMIT_NPROC (Docker's `nproc` ulimit, soft and hard), which the
 * Sentry enforces in its own kernel: fork() and clone() inside fail with EAGAIN once the sandbox holds that
 * many tasks of uid 1000, which is every process of a Paddock instance, commands run through Exec
 * included, and threads count as under Linux. Inside the sandbox that is exactly the pids limit runc gets,
 * and it counts only that sandbox's tasks (outside one, RLIMIT_NPROC counts a host uid across every
 * container: hence runc keeps the cgroup). The pids cgroup stays as the host's guard, sized so that a job
 * at its limit never meets it (more than 3 times the fork bomb's 5.3 host tasks a process) and a sandbox
 * gone wrong still cannot take the host's pid space: a sandbox that does meet it ends, as before.
 */
const GVISOR_SANDBOX_HOST_TASKS = 256;
const GVISOR_HOST_TASKS_PER_TASK = 16;

/** How the job's process limit (processes and threads at once) is enforced under each runtime. */
export function processLimits(runtime: 'runc' | 'runsc', limit: number): Pick<HostConfig, 'PidsLimit' | 'Ulimits'> {
  if (!Number.isInteger(limit) || limit < 1) throw new UnsupportedSpecError(`a process limit of ${limit}: give a whole number of processes, at least 1`);
  if (runtime === 'runc') return { PidsLimit: limit };
  return {
    Ulimits: [{ Name: 'nproc', Soft: limit, Hard: limit }],
    PidsLimit: GVISOR_SANDBOX_HOST_TASKS + GVISOR_HOST_TASKS_PER_TASK * limit,
  };
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
 * profile, CPU, memory and process limits, no network unless asked, and a read-only root filesystem when
 * the image is Paddock's: Kubernetes' "restricted" Pod Security (runAsNonRoot, allowPrivilegeEscalation
 * false, capabilities drop ALL, seccomp RuntimeDefault, readOnlyRootFilesystem). A bridged one is alone on
 * its execution's own network (ExecutionNetworks), never on Docker's shared default bridge. No port of it
 * is published on the host: sshd (INSTANCE_SSH_PORT) and every other port inside are reached through the
 * relay, in the container's network namespace. Under gVisor (runsc) the same settings apply inside the
 * sandbox, the process limit as processLimits says.
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
  const runtime = dockerRuntimeOf(spec);
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
    AttachStdout: true,
    AttachStderr: true,
    AttachStdin: false,
    OpenStdin: false,
    Tty: false,
    HostConfig: {
      Init: true,
      Runtime: runtime,
      // A parent cgroup per execution that outlives the container: its CPU time can be read after the end (usage/).
      CgroupParent: executionCgroupParent(input.brokerId, input.executionId),
      NetworkMode: bridge ? executionNetworkName(input.executionId) : 'none',
      ...(bridge && input.hostReachable === true ? { ExtraHosts: ['host.docker.internal:host-gateway'] } : {}),
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
      ...processLimits(runtime, spec.pidsLimit || input.pidsLimit),
      LogConfig: { Type: 'json-file', Config: { 'max-size': '64m', 'max-file': '1' } },
      AutoRemove: false,
    },
  };
}
