import type { ContainerCreateOptions } from 'dockerode';
import { ExecutionKind, NetworkMode, type ExecutionSpec } from '@paddock/proto';
import { labels } from './labels.js';

/** The unprivileged user every job runs as (the base image's `agent`). */
export const JOB_USER = '1000:1000';
export const WORKSPACE = '/workspace';
export const SCRIPT_PATH = '/opt/paddock/main.py';

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
  return {
    name: `paddock-${input.executionId}`,
    Image: input.image,
    Cmd: command(spec),
    Entrypoint: [],
    User: JOB_USER,
    WorkingDir: WORKSPACE,
    Env: [
      'HOME=/home/agent',
      'PYTHONUNBUFFERED=1',
      // Docker's init (tini) then signals the job's whole process group, not just its first process.
      'TINI_KILL_PROCESS_GROUP=1',
      `PADDOCK_EXECUTION_ID=${input.executionId}`,
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
