import { randomBytes } from 'node:crypto';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { BlobStore } from '@paddock/blobs';
import { topics, type Bus } from '@paddock/bus';
import { ExecutionKind, ExitCause, NetworkMode, OutputStream, type AccessReply, type ExecOutput, type ExecRequest, type ExecutionSpec, type InstanceExited, type LaunchReply, type LaunchRequest } from '@paddock/proto';
import { unsealSpec, type SecretBox } from '@paddock/secrets';
import type { Logger } from '@paddock/telemetry';
import { saveArtifacts, saveDirectoryArtifacts } from '../artifacts.js';
import type { BrokerConfig } from '../config.js';
import type { ExitRecord, InstanceStore, StopCause } from '../instanceStore.js';
import { OutputPublisher, skipPublished, type StreamOffsets } from '../output.js';
import { InstanceNotFoundError, TransientProviderError, UnsupportedSpecError } from '../provider/errors.js';
import type { InstanceSummary, OutputFrame, Provider } from '../provider/provider.js';
import { clearRun, runOf, type Instance, type Run } from './instance.js';
import { LaunchError } from './launchError.js';

const MiB = 1024 * 1024;
const MB = 1_000_000;

function sshAssociated(executionId: string): string {
  return `paddock.ssh.v1/${executionId}`;
}

/** Agents and services with a network run sshd (the base image's entrypoint starts it). */
function runsSshd(spec: ExecutionSpec): boolean {
  const entrypoint = spec.kind === ExecutionKind.EXECUTION_KIND_AGENT || spec.service;
  return entrypoint && spec.network === NetworkMode.NETWORK_MODE_BRIDGE;
}

const DISK_WATCH_MS = 1_000;

function diskReason(limitBytes: number): string {
  return `the workspace exceeded its ${Math.round(limitBytes / MB)} MB disk limit`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The lifecycle of this broker's instances, over a Provider: launches them, watches each to its end, saves
 * the workspace, publishes the exit, removes the instance, and after a restart adopts what a previous
 * process left running. It knows nothing of how a provider runs an instance.
 */
export class InstanceManager {
  private readonly instances = new Map<string, Instance>();
  private stopping = false;
  private reconciling: Promise<void> | null = null;

  constructor(
    private readonly provider: Provider,
    private readonly bus: Bus,
    private readonly store: InstanceStore,
    private readonly blobs: BlobStore,
    private readonly config: BrokerConfig,
    private readonly log: Logger,
    private readonly box: SecretBox,
  ) {}

  get running(): number {
    return this.instances.size;
  }

  /** Every execution this broker holds an instance for: launching, running or ending. */
  get executionIds(): string[] {
    return [...this.instances.keys()];
  }

  async launch(req: LaunchRequest): Promise<LaunchReply> {
    const { executionId, ownerId } = req;
    const spec = req.spec;
    if (!spec) throw new LaunchError(GrpcStatus.INVALID_ARGUMENT, 'spec is required');
    if (this.stopping) throw new LaunchError(GrpcStatus.UNAVAILABLE, 'broker is shutting down');
    const current = this.instances.get(executionId);
    if (current) {
      if (current.phase.name === 'provisioning') return current.phase.reply;
      const run = runOf(current.phase);
      return { containerId: run?.instanceId ?? '', startedAtMs: run?.startedAtMs ?? 0 };
    }
    if (this.instances.size >= this.config.capacity) {
      throw new LaunchError(GrpcStatus.RESOURCE_EXHAUSTED, `broker ${this.config.brokerId} is full (${this.config.capacity} containers)`);
    }
    let settle!: (reply: Promise<LaunchReply>) => void;
    const reply = new Promise<LaunchReply>((resolve) => (settle = resolve));
    const instance: Instance = {
      executionId,
      ownerId,
      output: new OutputPublisher(this.bus, executionId, this.config.maxOutputBytes),
      timeoutMs: spec.timeoutMs,
      diskLimitBytes: spec.diskBytes,
      phase: { name: 'provisioning', reply, stopAsked: null },
    };
    this.instances.set(executionId, instance);
    settle(this.provision(instance, spec));
    return reply;
  }

  private async provision(instance: Instance, sealedSpec: ExecutionSpec): Promise<LaunchReply> {
    const { executionId, ownerId } = instance;
    const log = this.log.child({ executionId });
    const { row, created } = await this.store.claim(executionId, this.config.brokerId, ownerId);
    if (!created && row.state !== 'provisioning') {
      // Launched before (a retried request): the first launch owns it; reconciliation watches it.
      this.instances.delete(executionId);
      return { containerId: row.containerId ?? '', startedAtMs: row.startedAtMs ?? 0 };
    }
    const image = sealedSpec.image || this.config.defaultImage;
    try {
      const spec = await this.withInputs(this.unseal(sealedSpec, executionId));
      let sshPassword: string | undefined;
      if (runsSshd(spec)) {
        sshPassword = randomBytes(18).toString('base64url');
        // Kept sealed: the table holds nothing that logs in.
        await this.store.setSshPassword(executionId, this.box.seal(sshPassword, sshAssociated(executionId)).toString('base64'));
      }
      const labels = { brokerId: this.config.brokerId, executionId, ownerId, deadlineMs: Date.now() + spec.timeoutMs };
      const made = await this.retrying(log, 'create', () =>
        this.provider.create({ labels, spec, image, pidsLimit: this.config.pidsLimit, ...(sshPassword === undefined ? {} : { sshPassword }) }, (line) =>
          instance.output.system(line),
        ),
      );
      await this.store.containerCreated(executionId, made.instanceId);
      const frames = await this.retrying(log, 'attach', () => this.provider.attach(executionId, { replay: false }));
      const outputDone = this.pump(instance, frames);
      await this.retrying(log, 'start', () => this.provider.start(executionId));
      const startedAtMs = Date.now();
      const deadlineMs = startedAtMs + spec.timeoutMs;
      await this.store.started(executionId, made.instanceId, startedAtMs, deadlineMs);
      await this.bus.publish(
        topics.instanceStarted,
        executionId,
        { executionId, brokerId: this.config.brokerId, containerId: made.instanceId, startedAtMs },
        { msgId: `${executionId}.started` },
      );
      log.info({ containerId: made.instanceId.slice(0, 12), image }, 'instance started');
      const run: Run = {
        instanceId: made.instanceId,
        startedAtMs,
        outputDone,
        deadline: this.armDeadline(instance, deadlineMs),
        diskWatch: this.watchDisk(instance),
      };
      const asked = instance.phase.name === 'provisioning' ? instance.phase.stopAsked : null;
      instance.phase = { name: 'running', run };
      if (asked) void this.requestStop(instance, asked, this.config.stopGraceMs);
      void this.watch(instance, run, spec.memoryBytes);
      return { containerId: made.instanceId, startedAtMs };
    } catch (err) {
      const detail = (err as Error).message;
      log.warn({ err }, 'provisioning failed');
      instance.output.system(`could not start the job: ${detail}`);
      await this.finish(instance, {
        cause: ExitCause[ExitCause.EXIT_CAUSE_PROVISIONING_FAILED],
        exitCode: null,
        detail,
        artifactsSaved: false,
        finishedAtMs: Date.now(),
      });
      throw new LaunchError(GrpcStatus.FAILED_PRECONDITION, detail);
    }
  }

  /**
   * Tries a provider call again while it fails in a way that may pass, with a growing pause, for at most
   * `provisionRetryMs` counted from the first attempt; any other failure is final at once.
   */
  private async retrying<T>(log: Logger, step: string, call: () => Promise<T>): Promise<T> {
    const firstAtMs = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        if (!(err instanceof TransientProviderError)) throw err;
        const delayMs = Math.min(1_000, 100 * 2 ** attempt);
        if (Date.now() + delayMs - firstAtMs > this.config.provisionRetryMs) throw err;
        log.warn({ err: err.message, step, attempt: attempt + 1, delayMs }, 'provider failed; trying again');
        await sleep(delayMs);
      }
    }
  }

  private unseal(spec: ExecutionSpec, executionId: string): ExecutionSpec {
    try {
      return unsealSpec(spec, this.box, executionId);
    } catch (err) {
      throw new Error(`the execution's secrets do not open with this broker's key (${this.config.secretKeyFile} must be the gateway's): ${(err as Error).message}`, { cause: err });
    }
  }

  /** The spec with the inputs the gateway stored in the blob store read back inline, each checked against its hash. */
  private async withInputs(spec: ExecutionSpec): Promise<ExecutionSpec> {
    const refs = Object.entries(spec.fileRefs);
    if (refs.length === 0 && !spec.scriptRef) return spec;
    const files: Record<string, Buffer> = { ...spec.files };
    for (const [path, ref] of refs) {
      if (path in files) throw new UnsupportedSpecError(`file "${path}" is given both inline and by reference`);
      files[path] = await this.blobs.get(ref);
    }
    const script = spec.scriptRef ? (await this.blobs.get(spec.scriptRef)).toString('utf8') : spec.script;
    return { ...spec, files, script, fileRefs: {}, scriptRef: undefined };
  }

  /** Copies the job's output to the bus until it ends; resolves then, whatever happened. */
  private async pump(instance: Instance, frames: AsyncIterable<OutputFrame>): Promise<void> {
    try {
      for await (const frame of frames) instance.output.write(frame.stream, frame.data);
    } catch (err) {
      this.log.warn({ err, executionId: instance.executionId }, 'reading the output stopped');
    }
  }

  private armDeadline(instance: Instance, deadlineMs: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      instance.output.system(`timed out after ${Math.round(instance.timeoutMs / 1000)}s: stopping the job (SIGTERM, then SIGKILL)`);
      void this.requestStop(instance, 'timed_out', this.config.stopGraceMs);
    }, Math.max(0, deadlineMs - Date.now()));
    timer.unref();
    return timer;
  }

  /**
   * The kernel refuses writes past the limit (ENOSPC), but a job may go on without what it could not
   * write; a full workspace ends the job, as running out of memory does. A look per second is a local
   * statfs, no call to the engine.
   */
  private watchDisk(instance: Instance): NodeJS.Timeout | null {
    if (instance.diskLimitBytes <= 0) return null;
    let looking = false;
    const timer = setInterval(() => {
      if (looking || instance.phase.name !== 'running') return;
      looking = true;
      this.provider
        .workspaceFull(instance.executionId)
        .then((full) => {
          if (!full || instance.phase.name !== 'running') return;
          instance.output.system(`${diskReason(instance.diskLimitBytes)}: stopping the job (SIGTERM, then SIGKILL)`);
          return this.requestStop(instance, 'disk_full', this.config.stopGraceMs);
        })
        .catch((err: unknown) => this.log.warn({ err, executionId: instance.executionId }, 'looking at the workspace failed'))
        .finally(() => (looking = false));
    }, DISK_WATCH_MS);
    timer.unref();
    return timer;
  }

  /** Running -> stopping; a stop asked while provisioning is kept for when the job runs. The first cause wins. */
  private async requestStop(instance: Instance, cause: StopCause, graceMs: number): Promise<void> {
    const phase = instance.phase;
    if (phase.name === 'provisioning') {
      instance.phase = { ...phase, stopAsked: phase.stopAsked ?? cause };
      return;
    }
    if (phase.name !== 'running') return;
    instance.phase = { name: 'stopping', run: phase.run, cause };
    await this.halt(instance, cause, graceMs);
  }

  private async halt(instance: Instance, cause: StopCause, graceMs: number): Promise<void> {
    const { executionId } = instance;
    await this.store.stopping(executionId, cause).catch((err: unknown) => this.log.warn({ err }, 'recording stop cause failed'));
    await this.provider.stop(executionId, graceMs).catch((err: unknown) => this.log.warn({ err, executionId }, 'stop failed'));
  }

  /** The running instance of an execution on this broker, or a NOT_FOUND error. */
  private async runningRow(executionId: string): Promise<{ sshPassword: string | null }> {
    const row = await this.store.get(executionId);
    if (!row || row.brokerId !== this.config.brokerId || row.state !== 'running' || !row.containerId) {
      throw new LaunchError(GrpcStatus.NOT_FOUND, `execution ${executionId} has no running instance on broker ${this.config.brokerId}`);
    }
    const sshPassword = row.sshPassword === null ? null : this.box.open(Buffer.from(row.sshPassword, 'base64'), sshAssociated(executionId));
    return { sshPassword };
  }

  async access(executionId: string): Promise<AccessReply> {
    const { sshPassword } = await this.runningRow(executionId);
    if (!sshPassword) {
      throw new LaunchError(GrpcStatus.FAILED_PRECONDITION, 'this instance runs no sshd: only agents and services with a network (bridge) do');
    }
    const ssh = (await this.provider.inspect(executionId)).publishedPorts.get(22);
    if (!ssh?.port) throw new LaunchError(GrpcStatus.FAILED_PRECONDITION, 'the instance has no published SSH port');
    return { sshHost: this.config.sshHost, sshPort: ssh.port, username: 'agent', password: sshPassword };
  }

  /**
   * Runs a command in the instance as the agent user; yields its output as the caller takes it (bytes as
   * they came, never decoded), then one message with its exit code. The command is killed when `signal`
   * aborts (its caller went away) or the caller stops iterating.
   */
  async *exec(req: ExecRequest, signal?: AbortSignal): AsyncGenerator<ExecOutput> {
    if (req.cmd.length === 0) throw new LaunchError(GrpcStatus.INVALID_ARGUMENT, 'cmd is empty');
    await this.runningRow(req.executionId);
    const command = await this.provider.exec(req.executionId, { cmd: req.cmd, stdin: req.stdin });
    const kill = () => void command.kill().catch((err: unknown) => this.log.warn({ err, executionId: req.executionId }, 'killing a command failed'));
    signal?.addEventListener('abort', kill, { once: true });
    let ended = false;
    try {
      for await (const frame of command.output) {
        if (signal?.aborted) return;
        yield { stream: frame.stream, data: frame.data, exitCode: undefined };
      }
      if (signal?.aborted) return;
      ended = true;
      yield { stream: OutputStream.OUTPUT_STREAM_UNSPECIFIED, data: Buffer.alloc(0), exitCode: await command.exitCode() };
    } finally {
      signal?.removeEventListener('abort', kill);
      if (!ended) await command.kill().catch((err: unknown) => this.log.warn({ err, executionId: req.executionId }, 'killing a command failed'));
    }
  }

  /** SIGTERM, the grace period, SIGKILL. False when this broker holds no such execution. */
  async cancel(executionId: string, graceMs: number): Promise<boolean> {
    const instance = this.instances.get(executionId);
    if (instance) {
      const phase = instance.phase;
      if (phase.name === 'ending') return false;
      const first = phase.name === 'running' || (phase.name === 'provisioning' && phase.stopAsked === null);
      if (first) instance.output.system('cancelled: stopping the job (SIGTERM, then SIGKILL after the grace period)');
      await this.requestStop(instance, 'cancelled', graceMs);
      return true;
    }
    const row = await this.store.get(executionId);
    return row !== null && row.state !== 'ended';
  }

  private async watch(instance: Instance, run: Run, memoryBytes: number): Promise<void> {
    const { executionId } = instance;
    try {
      const exitCode = await this.provider.wait(executionId);
      const phase = instance.phase;
      const stopCause = phase.name === 'stopping' ? phase.cause : null;
      instance.phase = { name: 'ending', run };
      clearRun(run);
      // A job that filled its workspace and ended before the next look is caught here.
      const diskFull = stopCause === 'disk_full' || (instance.diskLimitBytes > 0 && !stopCause && (await this.provider.workspaceFull(executionId).catch(() => false)));
      // A clean exit that Paddock did not cause needs nothing more from the provider (one call less per job).
      const info = exitCode === 0 && !stopCause ? null : await this.provider.inspect(executionId);
      let cause = ExitCause.EXIT_CAUSE_EXITED;
      let detail = exitCode === 0 ? '' : `the job exited with code ${exitCode}`;
      if (stopCause === 'cancelled') {
        cause = ExitCause.EXIT_CAUSE_CANCELLED;
        detail = 'cancelled';
      } else if (stopCause === 'timed_out') {
        cause = ExitCause.EXIT_CAUSE_TIMED_OUT;
        const limitS = Math.round(instance.timeoutMs / 1000);
        detail = limitS > 0 ? `timed out: the job ran longer than its ${limitS}s limit` : 'timed out';
      } else if (info?.oomKilled) {
        cause = ExitCause.EXIT_CAUSE_OOM_KILLED;
        const limit = memoryBytes || info.memoryLimitBytes;
        detail = `out of memory: the job used more than its ${Math.round(limit / MiB)} MiB limit and was killed`;
      } else if (diskFull) {
        cause = ExitCause.EXIT_CAUSE_DISK_FULL;
        detail = `${diskReason(instance.diskLimitBytes)}: /workspace was full when the job ended (exit code ${exitCode})`;
      }
      // The broker already said why when it stopped a job for its disk.
      if (cause !== ExitCause.EXIT_CAUSE_EXITED && cause !== ExitCause.EXIT_CAUSE_CANCELLED && stopCause !== 'disk_full') instance.output.system(detail);
      await Promise.race([run.outputDone, sleep(2000)]);
      const artifactsSaved = await this.saveWorkspace(instance);
      await this.finish(instance, { cause: ExitCause[cause], exitCode, detail, artifactsSaved, finishedAtMs: Date.now() });
    } catch (err) {
      if (this.stopping) return;
      this.log.error({ err, executionId }, 'watching the instance failed; reconciling it');
      this.instances.delete(executionId);
      setTimeout(() => void this.reconcile().catch(() => {}), 1000).unref();
    }
  }

  /** The workspace as a ZIP, read from where the provider keeps it. */
  private async saveWorkspace(instance: Instance): Promise<boolean> {
    const { executionId } = instance;
    try {
      const content = await this.provider.workspace(executionId);
      if (content.kind === 'directory') await saveDirectoryArtifacts(content.path, this.config.artifactsDir, executionId);
      else await saveArtifacts(content.stream, this.config.artifactsDir, executionId);
      return true;
    } catch (err) {
      this.log.warn({ err, executionId }, 'saving the workspace failed');
      instance.output.system(`the workspace could not be saved: ${(err as Error).message}`);
      return false;
    }
  }

  /**
   * The end, in an order that survives a crash at any step: output closed, exit recorded, instance
   * removed, exit published, row ended.
   */
  private async finish(instance: Instance, exit: ExitRecord): Promise<void> {
    const { executionId } = instance;
    const run = runOf(instance.phase);
    instance.phase = { name: 'ending', run };
    if (run) clearRun(run);
    await instance.output.end().catch((err: unknown) => this.log.error({ err, executionId }, 'output incomplete'));
    await this.store.exited(executionId, exit);
    await this.removeInstance(executionId);
    await this.publishExit(executionId, run?.startedAtMs ?? 0, exit);
    this.instances.delete(executionId);
  }

  /** Removes the instance; one the provider cannot remove now is left to the next reconciliation, which retries. */
  private async removeInstance(executionId: string): Promise<void> {
    await this.provider.remove(executionId).catch((err: unknown) => this.log.error({ err, executionId }, 'removing the instance failed; the next reconciliation retries'));
  }

  private async publishExit(executionId: string, startedAtMs: number, exit: ExitRecord): Promise<void> {
    const cause = ExitCause[exit.cause as keyof typeof ExitCause] ?? ExitCause.EXIT_CAUSE_LOST;
    const message: InstanceExited = {
      executionId,
      brokerId: this.config.brokerId,
      cause,
      ...(exit.exitCode === null ? {} : { exitCode: exit.exitCode }),
      detail: exit.detail,
      startedAtMs,
      finishedAtMs: exit.finishedAtMs,
      artifactsSaved: exit.artifactsSaved,
    };
    // Until it is published the row is not ended, so a crash here is repaired by reconcile().
    await this.bus.publish(topics.instanceExited, executionId, message, { msgId: `${executionId}.exited`, retryForMs: 5 * 60_000 });
    await this.store.ended(executionId);
    this.log.info({ executionId, cause: exit.cause, exitCode: exit.exitCode }, 'instance ended');
  }

  /**
   * Brings the provider's instances and this broker's table back in line, logging each repair: every
   * instance labelled with this broker's id is adopted (watched to its end, its output resumed from where
   * the last process stopped publishing) or, when its execution has ended, removed; every live row without
   * an instance gets the end it had recorded, or is reported lost; workspaces of ended executions go.
   * Runs at start and then periodically; one run at a time.
   */
  reconcile(): Promise<void> {
    this.reconciling ??= this.reconcileOnce().finally(() => (this.reconciling = null));
    return this.reconciling;
  }

  private async reconcileOnce(): Promise<void> {
    const found = await this.provider.list({ brokerId: this.config.brokerId });
    const seen = new Set<string>();
    for (const summary of found) {
      const executionId = summary.labels.executionId;
      seen.add(executionId);
      if (this.instances.has(executionId) || this.stopping) continue;
      await this.reconcileInstance(summary);
    }
    for (const row of await this.store.live(this.config.brokerId)) {
      if (seen.has(row.executionId) || this.instances.has(row.executionId) || this.stopping) continue;
      if (row.exit) {
        this.log.warn({ executionId: row.executionId }, 'reconcile: publishing the recorded end of an instance that is gone');
        await this.removeInstance(row.executionId);
        await this.publishExit(row.executionId, row.startedAtMs ?? 0, row.exit);
        continue;
      }
      if (row.state === 'provisioning' && !row.containerId) {
        this.log.warn({ executionId: row.executionId }, 'reconcile: a launch that never created its instance ends as never run');
        await this.endUnstarted(row.executionId, 'the broker stopped before the job could start; it never ran');
        continue;
      }
      this.log.warn({ executionId: row.executionId }, 'reconcile: the instance is gone; reporting the execution lost');
      await this.endWithoutInstance(row.executionId, row.startedAtMs ?? 0, ExitCause.EXIT_CAUSE_LOST, 'the container disappeared while its broker was down');
    }
    for (const executionId of await this.provider.leftovers()) {
      if (seen.has(executionId) || this.instances.has(executionId) || this.stopping) continue;
      const row = await this.store.get(executionId);
      if (row?.brokerId !== this.config.brokerId || row.state !== 'ended') continue;
      this.log.warn({ executionId }, 'reconcile: removing what is left of an ended execution');
      await this.removeInstance(executionId);
    }
  }

  private async reconcileInstance(summary: InstanceSummary): Promise<void> {
    const { executionId } = summary.labels;
    const row = await this.store.get(executionId);
    if (row?.state === 'ended' || row?.exit) {
      this.log.warn({ executionId, instanceId: summary.instanceId.slice(0, 12) }, 'reconcile: removing the instance of an ended execution');
      await this.removeInstance(executionId);
      if (row.state !== 'ended' && row.exit) await this.publishExit(executionId, row.startedAtMs ?? 0, row.exit);
      return;
    }
    if (summary.state === 'created') {
      // The broker died between creating and starting it: the job never ran.
      this.log.warn({ executionId }, 'reconcile: an instance created but never started ends as never run');
      await this.removeInstance(executionId);
      await this.endUnstarted(executionId, 'the broker stopped before the job could start; it never ran');
      return;
    }
    await this.adopt(executionId, summary.labels.ownerId || row?.ownerId || '', row?.stopCause ?? null);
  }

  private endUnstarted(executionId: string, detail: string): Promise<void> {
    return this.endWithoutInstance(executionId, 0, ExitCause.EXIT_CAUSE_PROVISIONING_FAILED, detail);
  }

  private async endWithoutInstance(executionId: string, startedAtMs: number, cause: ExitCause, detail: string): Promise<void> {
    await this.removeInstance(executionId);
    const output = new OutputPublisher(this.bus, executionId, this.config.maxOutputBytes);
    output.system(detail);
    await output.end();
    const exit = { cause: ExitCause[cause], exitCode: null, detail, artifactsSaved: false, finishedAtMs: Date.now() };
    await this.store.exited(executionId, exit);
    await this.publishExit(executionId, startedAtMs, exit);
  }

  private async adopt(executionId: string, ownerId: string, stopCause: StopCause | null): Promise<void> {
    let info;
    try {
      info = await this.provider.inspect(executionId);
    } catch (err) {
      // Removed between the listing and now: the next pass over the rows reports it.
      if (err instanceof InstanceNotFoundError) return;
      throw err;
    }
    const startedAtMs = info.startedAtMs > 0 ? info.startedAtMs : Date.now();
    const deadlineMs = info.labels.deadlineMs;
    const published = await this.publishedOffsets(executionId);
    const output = new OutputPublisher(this.bus, executionId, this.config.maxOutputBytes, published === 'ended' ? undefined : published);
    const instance: Instance = {
      executionId,
      ownerId,
      output,
      timeoutMs: Math.max(0, deadlineMs - startedAtMs),
      diskLimitBytes: info.diskLimitBytes,
      phase: { name: 'ending', run: null },
    };
    let outputDone = Promise.resolve();
    // The job's output from its start, less what was already published, byte for byte per stream.
    if (published !== 'ended') outputDone = this.pump(instance, skipPublished(published, await this.provider.attach(executionId, { replay: true })));
    const run: Run = {
      instanceId: info.instanceId,
      startedAtMs,
      outputDone,
      deadline: info.running && deadlineMs > 0 ? this.armDeadline(instance, deadlineMs) : null,
      diskWatch: info.running ? this.watchDisk(instance) : null,
    };
    instance.phase = stopCause ? { name: 'stopping', run, cause: stopCause } : { name: 'running', run };
    this.instances.set(executionId, instance);
    this.log.info({ executionId, containerId: info.instanceId.slice(0, 12), running: info.running }, 'reconcile: adopted instance');
    if (info.running && stopCause) void this.halt(instance, stopCause, this.config.stopGraceMs);
    void this.watch(instance, run, info.memoryLimitBytes);
  }

  /** How much of each stream the last process published, from the last chunk on the bus; 'ended' after eof. */
  private async publishedOffsets(executionId: string): Promise<StreamOffsets | 'ended'> {
    const last = (await this.bus.lastStored(topics.output, executionId))?.message;
    if (!last) return { stdout: 0, stderr: 0 };
    if (last.eof) return 'ended';
    return {
      stdout: last.stdoutOffset + (last.stream === OutputStream.OUTPUT_STREAM_STDOUT ? last.data.length : 0),
      stderr: last.stderrOffset + (last.stream === OutputStream.OUTPUT_STREAM_STDERR ? last.data.length : 0),
    };
  }

  /** Stops watching; the instances keep running and the next broker process adopts them. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const instance of this.instances.values()) {
      const run = runOf(instance.phase);
      if (run) clearRun(run);
    }
    await this.reconciling?.catch(() => {});
  }
}
