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
});

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
}

function command(spec: ExecutionSpec): string[] {
  switch (spec.kind) {
    case ExecutionKind.EXECUTION_KIND_SHELL:
      return ['/bin/sh', '-c', spec.command];
    case ExecutionKind.EXECUTION_KIND_PYTHON:
      return ['python3', '-u', SCRIPT_PATH];
    case ExecutionKind.EXECUTION_KIND_AGENT:
      return [AGENT.entrypoint];
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
  return {
    name: `paddock-${input.executionId}`,
    Image: input.image,
    Cmd: command(spec),
    Entrypoint: [],
    User: agent ? '0:0' : JOB_USER,
    WorkingDir: WORKSPACE,
    Env: [
      'HOME=/home/agent',
      'PYTHONUNBUFFERED=1',
      // Docker's init (tini) then signals the job's whole process group, not just its first process.
      'TINI_KILL_PROCESS_GROUP=1',
      `PADDOCK_EXECUTION_ID=${input.executionId}`,
      ...(agent
        ? [
            'TERM=xterm-256color',
            `PADDOCK_RUNTIME=${agent.runtime}`,
            `PADDOCK_WORKFLOW=${AGENT.workflow}`,
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
    },
    AttachStdout: true,
    AttachStderr: true,
    AttachStdin: false,
    OpenStdin: false,
    Tty: false,
    HostConfig: {
      Init: true,
      NetworkMode: bridge ? 'bridge' : 'none',
      ...(bridge ? { ExtraHosts: ['host.docker.internal:host-gateway'] } : {}),
      CapDrop: ['ALL'],
      ...(agent ? { CapAdd: AGENT_CAPABILITIES } : {}),
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
