import type { ContainerCreateOptions } from 'dockerode';
import { ExecutionKind, NetworkMode, type ExecutionSpec } from '@paddock/proto';
import { findRuntime } from '@paddock/runtimes';
import { labels } from './labels.js';

/** The unprivileged user every job runs as (the base image's `agent`). */
export const JOB_USER = '1000:1000';
export const WORKSPACE = '/workspace';
export const SCRIPT_PATH = '/opt/paddock/main.py';

/** What an agent container is given (see images/base/rootfs/opt/paddock/bin/paddock-entrypoint). */
export const AGENT = Object.freeze({
  entrypoint: '/opt/paddock/bin/paddock-entrypoint',
  workflow: '/opt/paddock/run/workflow.sh',
  prompt: '/opt/paddock/run/prompt',
  repoToken: '/opt/paddock/run/secrets/repo-token',
  sshPassword: '/opt/paddock/run/secrets/ssh-password',
});

/** Agents and services run under the base image's entrypoint: tmux session `agent`, sshd, the workflow. */
export function runsUnderEntrypoint(spec: ExecutionSpec): boolean {
  return spec.kind === ExecutionKind.EXECUTION_KIND_AGENT || spec.service;
}

/** sshd can be reached only from a container with a network (its :22 is published on the host). */
export function hasSsh(spec: ExecutionSpec): boolean {
  return runsUnderEntrypoint(spec) && spec.network === NetworkMode.NETWORK_MODE_BRIDGE;
}

/**
 * An agent container starts as root only to start sshd and hand the workspace to the agent user; the
 * entrypoint then drops to uid 1000 with no capabilities. These are what that first step needs: sshd
 * binds :22, chroots and switches users; the rest sets owners and modes.
 */
const AGENT_CAPABILITIES = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'SETUID', 'SETGID', 'SYS_CHROOT', 'AUDIT_WRITE', 'NET_BIND_SERVICE', 'KILL'];

export interface ContainerSpecInput {
  readonly executionId: string;
  readonly ownerId: string;
  readonly brokerId: string;
  readonly spec: ExecutionSpec;
  readonly image: string;
  readonly pidsLimit: number;
  readonly deadlineMs: number;
  /** The host address :22 is published on, for instances with sshd (default 127.0.0.1). */
  readonly sshHost?: string;
  /** A folder of the host mounted at /workspace, when the broker keeps workspaces on its host. */
  readonly workspaceDir?: string;
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

/**
 * A fresh container for one execution: the job is its main process (under Docker's init, which forwards
 * signals and reaps), as an unprivileged user, with every capability dropped, no privilege escalation,
 * CPU, memory and pid limits, and no network unless asked.
 */
export function containerSpec(input: ContainerSpecInput): ContainerCreateOptions {
  const { spec } = input;
  const bridge = spec.network === NetworkMode.NETWORK_MODE_BRIDGE;
  const agent = spec.kind === ExecutionKind.EXECUTION_KIND_AGENT ? spec.agent : undefined;
  if (spec.kind === ExecutionKind.EXECUTION_KIND_AGENT && (!agent || !findRuntime(agent.runtime))) {
    throw new Error(`unknown agent runtime "${agent?.runtime ?? ''}"`);
  }
  const entrypoint = runsUnderEntrypoint(spec);
  const ssh = hasSsh(spec);
  return {
    name: `paddock-${input.executionId}`,
    Image: input.image,
    Cmd: command(spec),
    Entrypoint: [],
    User: entrypoint ? '0:0' : JOB_USER,
    WorkingDir: WORKSPACE,
    Env: [
      'HOME=/home/agent',
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
      ...Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    ],
    Labels: {
      [labels.executionId]: input.executionId,
      [labels.owner]: input.ownerId,
      [labels.brokerId]: input.brokerId,
      [labels.deadlineMs]: String(input.deadlineMs),
      [labels.diskBytes]: String(spec.diskBytes),
    },
    ...(ssh ? { ExposedPorts: { '22/tcp': {} } } : {}),
    AttachStdout: true,
    AttachStderr: true,
    AttachStdin: false,
    OpenStdin: false,
    Tty: false,
    HostConfig: {
      Init: true,
      NetworkMode: bridge ? 'bridge' : 'none',
      ...(bridge ? { ExtraHosts: ['host.docker.internal:host-gateway'] } : {}),
      ...(ssh ? { PortBindings: { '22/tcp': [{ HostIp: input.sshHost ?? '127.0.0.1', HostPort: '' }] } } : {}),
      ...(input.workspaceDir ? { Binds: [`${input.workspaceDir}:${WORKSPACE}:rw`] } : {}),
      CapDrop: ['ALL'],
      ...(entrypoint ? { CapAdd: AGENT_CAPABILITIES } : {}),
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
