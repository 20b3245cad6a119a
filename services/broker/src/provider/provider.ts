import type { Duplex, Readable } from 'node:stream';
import type { ExecutionSpec, OutputStream } from '@paddock/proto';

/**
 * Where sshd listens inside an instance that runs one (Paddock's images, whatever the provider): above
 * 1024, since it runs without privileges.
 */
export const INSTANCE_SSH_PORT = 2222;

/**
 * Where executions run: a Docker engine today; a Kubernetes cluster, SSH hosts or a custom backend beside
 * it. The broker's lifecycle (launch, output, artifacts, reconcile, cancel, finish) asks only this.
 *
 * Every instance is addressed by the execution it runs: a provider names what it creates after the
 * execution id and labels it with `InstanceLabels`, so that after a crash the broker finds its own by label.
 * Each method is safe to call again: removing what is gone, or stopping what has stopped, succeeds.
 */
export interface Provider {
  /** Short name, as brokers announce it in their heartbeat (`docker`, `kubernetes`, `ssh`). */
  readonly name: string;
  /**
   * Creates the instance (not started): image ready, limits applied, workspace holding the request's files.
   * A leftover of an earlier attempt at the same execution is replaced. Rejects with an error of
   * ./errors.ts: TransientProviderError when trying again may work.
   */
  create(request: CreateRequest, progress: (line: string) => void): Promise<CreatedInstance>;
  start(executionId: string): Promise<void>;
  /**
   * The job's output as it comes, each read a frame of stdout or stderr bytes (never decoded). `replay`
   * reads it from the start (adopting an instance after a crash); otherwise from now on (call it before
   * `start` to miss nothing). Ends when the job's output ends.
   */
  attach(executionId: string, opts: { replay: boolean }): Promise<AsyncIterable<OutputFrame>>;
  /** Resolves when the job's main process has ended, with its exit status. */
  wait(executionId: string): Promise<number>;
  inspect(executionId: string): Promise<InstanceInfo>;
  /** Asks the job to end (SIGTERM), then forces it after `graceMs`. */
  stop(executionId: string, graceMs: number): Promise<void>;
  /** Removes the instance and everything the provider holds for it (its workspace too). */
  remove(executionId: string): Promise<void>;
  /** True when the workspace has a disk limit and no room left: the job met its limit. Cheap enough to ask every second. */
  workspaceFull(executionId: string): Promise<boolean>;
  /** The workspace as it is now, to be saved as the execution's artifacts. */
  workspace(executionId: string): Promise<WorkspaceContent>;
  /** Runs a command in a running instance as the job's user, in its workspace. */
  exec(executionId: string, request: ExecCommand): Promise<ExecProcess>;
  /** Resources used so far. */
  stats(executionId: string): Promise<InstanceStats>;
  /** Every instance (running or not) carrying all of these labels. */
  list(selector: Partial<InstanceLabels>): Promise<InstanceSummary[]>;
  /**
   * A byte stream to a TCP port of the running instance, as a process inside it would connect to
   * 127.0.0.1:port, whatever the instance's network (none included). The stream emits `connect` once the
   * connection is open, fails with the relay's PortNotListeningError when nothing listens there, and
   * half-closes the connection when it is ended.
   */
  reachPort(executionId: string, port: number): Promise<Duplex>;
  /**
   * The other way: a listener on 127.0.0.1:port inside the running instance, each connection to it relayed
   * to the unix socket `socketPath` on the broker's host (how Paddock's own endpoints appear inside).
   * Resolves once it listens.
   */
  listenInside(executionId: string, port: number, socketPath: string): Promise<InsideListener>;
  /**
   * The executions the provider still holds something for (a workspace), with or without an instance: the
   * lifecycle removes those it knows have ended, such as a workspace left by a broker that died between
   * preparing it and creating the instance. Only this broker's: several brokers may share one engine.
   */
  leftovers(brokerId: string): Promise<string[]>;
}

/** A listener inside an instance (Provider.listenInside). */
export interface InsideListener {
  /** Resolves (never rejects) when the listener has stopped, with why. */
  readonly ended: Promise<string>;
  /** Stops it and the connections it carries; safe to call again. */
  stop(): Promise<void>;
}

/** Labels on every instance: who it belongs to and when it must end, readable again after a crash. */
export interface InstanceLabels {
  readonly brokerId: string;
  readonly executionId: string;
  readonly ownerId: string;
  /** When the job must have ended (epoch ms), so that a broker that adopts it re-arms the timeout. */
  readonly deadlineMs: number;
}

export interface CreateRequest {
  readonly labels: InstanceLabels;
  /** Unsealed, with every input inline: `files` and `script` hold what the blob store had for their refs. */
  readonly spec: ExecutionSpec;
  readonly image: string;
  /** Default for a spec that sets none. */
  readonly pidsLimit: number;
  /** Put where the image's entrypoint reads it at start, when the instance runs sshd. */
  readonly sshPassword?: string;
}

export interface CreatedInstance {
  /** The provider's own id of the instance (a container id). */
  readonly instanceId: string;
  /** Time spent building the instance's image first (0 when it was there): a start phase of its own. */
  readonly imageBuildMs: number;
}

export interface OutputFrame {
  readonly stream: OutputStream.OUTPUT_STREAM_STDOUT | OutputStream.OUTPUT_STREAM_STDERR;
  readonly data: Buffer;
}

export interface InstanceInfo {
  readonly instanceId: string;
  readonly labels: InstanceLabels;
  readonly running: boolean;
  /** 0 when it never started. */
  readonly startedAtMs: number;
  readonly exitCode: number | null;
  readonly oomKilled: boolean;
  readonly memoryLimitBytes: number;
  /** The workspace's limit, 0 for none. */
  readonly diskLimitBytes: number;
}

export interface InstanceSummary {
  readonly instanceId: string;
  readonly labels: InstanceLabels;
  /** `created`: never started; `running`; `exited`: started and ended. */
  readonly state: 'created' | 'running' | 'exited';
}

export type WorkspaceContent =
  /** A folder of this host holding the workspace; nothing in it is trusted (the job wrote it). */
  | { readonly kind: 'directory'; readonly path: string }
  /** A tar stream of the workspace, its entries under `workspace/`. */
  | { readonly kind: 'tar'; readonly stream: Readable };

export interface ExecCommand {
  readonly cmd: readonly string[];
  /** Written to the command's stdin, which is then closed; empty for none. */
  readonly stdin: Uint8Array;
}

/** A command running in an instance. */
export interface ExecProcess {
  /** Its output, read as the caller reads it: a caller that stops reading pauses the command's output. */
  readonly output: AsyncIterable<OutputFrame>;
  /** Its exit status, once its output has ended. */
  exitCode(): Promise<number>;
  /** Ends it and what it started, at once; safe to call after it ended. */
  kill(): Promise<void>;
}

export interface InstanceStats {
  /** CPU time used by the job since it started. */
  readonly cpuNanos: number;
  readonly memoryBytes: number;
}
