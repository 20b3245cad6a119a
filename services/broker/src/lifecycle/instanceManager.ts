import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { BlobStore } from '@paddock/blobs';
import { topics, type Bus } from '@paddock/bus';
import { ExecutionKind, ExitCause, OutputStream, type AccessReply, type ExecOutput, type ExecRequest, type ExecutionSpec, type InstanceExited, type LaunchReply, type LaunchRequest } from '@paddock/proto';
import { unsealSpec, type SpecKey } from '@paddock/secrets';
import { unrecordedMetrics, type Logger, type PaddockMetrics } from '@paddock/telemetry';
import { saveArtifacts, saveDirectoryArtifacts } from '../artifacts.js';
import type { BrokerConfig } from '../config.js';
import type { ExitRecord, InstanceRow, InstanceStore, StopCause } from '../instanceStore.js';
import { OutputPublisher, skipPublished, type StreamOffsets } from '../output.js';
import { InstanceNotFoundError, TransientProviderError, UnsupportedSpecError } from '../provider/errors.js';
import type { CreatedInstance, InstanceSummary, OutputFrame, Provider } from '../provider/provider.js';
import type { RelayEndpoint } from '../relay/endpoints.js';
import { OutboundRelays } from '../relay/outboundRelays.js';
import { EgressProxies } from '../egress/egressProxies.js';
import { UsageMeters } from '../usage/usageMeters.js';
import type { UsageEnd } from '../usage/usageMeter.js';
import { isUnavailable, onBus, type BusUnavailableError, type DatabaseUnavailableError } from '../unavailable.js';
import { clearRun, runOf, type Instance, type Run } from './instance.js';
import { LaunchError } from './launchError.js';
import { BrokerStoppingError, untilDone } from './untilDone.js';

const MiB = 1024 * 1024;

function sshAssociated(executionId: string): string {
  return `paddock.ssh.v1/${executionId}`;
}

/**
 * Agents and services run sshd (the base image's entrypoint starts it), whatever their network: it is
 * reached through the relay, inside the instance's network namespace.
 */
function runsSshd(spec: ExecutionSpec): boolean {
  return spec.kind === ExecutionKind.EXECUTION_KIND_AGENT || spec.service;
}

const DISK_WATCH_MS = 1_000;

function diskReason(limitBytes: number): string {
  return `the workspace exceeded its ${Math.round(limitBytes / MiB)} MiB disk limit`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const isTransientProviderError = (err: unknown): boolean => err instanceof TransientProviderError;

/**
 * The lifecycle of this broker's instances, over a Provider: launches them, watches each to its end, saves
 * the workspace, publishes the exit, removes the instance, and after a restart adopts what a previous
 * process left running. It knows nothing of how a provider runs an instance.
 */
export class InstanceManager {
  private readonly instances = new Map<string, Instance>();
  /** Aborted by stop(): steps retried until done give up, and the next broker process takes over. */
  private readonly shutdown = new AbortController();
  private reconciling: Promise<void> | null = null;
  /** Executions a reconciliation is repairing right now: a Launch of one waits until the repair is over. */
  private readonly repairing = new Map<string, Promise<void>>();
  /**
   * Executions this broker still has something of (an instance found by its label, a row whose end is not
   * published) that reconciliation has not settled yet, typically because PostgreSQL or NATS was away. They
   * stay named in the heartbeat, so that nobody takes them for lost meanwhile.
   */
  private unsettled = new Set<string>();
  private reconcileRetry: NodeJS.Timeout | null = null;
  private failedPasses = 0;
  /** Paddock's own endpoints inside each running instance. */
  private readonly relays: OutboundRelays;
  /** The egress proxy of each running instance that asked for an allowlist. */
  private readonly egress: EgressProxies;
  /** Each running instance's compute usage, published for billing. */
  private readonly usage: UsageMeters;

  constructor(
    private readonly provider: Provider,
    private readonly bus: Bus,
    private readonly store: InstanceStore,
    private readonly blobs: BlobStore,
    private readonly config: BrokerConfig,
    private readonly log: Logger,
    /** Opens what the gateway sealed in specs; also seals this broker's SSH passwords at rest. */
    private readonly specKey: SpecKey,
    private readonly metrics: PaddockMetrics = unrecordedMetrics(),
    /** Paddock's own endpoints, offered inside every running instance through the relay. */
    relayEndpoints: readonly RelayEndpoint[] = [],
  ) {
    this.relays = new OutboundRelays(provider, relayEndpoints, log);
    this.egress = new EgressProxies(join(config.home, 'run'), log, config.egressAllowInternal);
    this.usage = new UsageMeters(bus, { brokerId: config.brokerId, intervalMs: config.usageIntervalMs }, log, this.shutdown.signal);
  }

  private get stopping(): boolean {
    return this.shutdown.signal.aborted;
  }

  /** Every execution this broker holds: launching, running, ending, or found and not yet reconciled. */
  get executionIds(): string[] {
    return [...new Set([...this.instances.keys(), ...this.unsettled])];
  }

  get running(): number {
    return this.executionIds.length;
  }

  async launch(req: LaunchRequest): Promise<LaunchReply> {
    const { executionId, ownerId } = req;
    const spec = req.spec;
    if (!spec) throw new LaunchError(GrpcStatus.INVALID_ARGUMENT, 'spec is required');
    // A reconciliation deciding about this execution (forgetting a launch that never ran) finishes first.
    const repair = this.repairing.get(executionId);
    if (repair) await repair;
    if (this.stopping) throw new LaunchError(GrpcStatus.UNAVAILABLE, 'broker is shutting down');
    const current = this.instances.get(executionId);
    if (current) {
      if (current.phase.name === 'provisioning') return current.phase.reply;
      const run = runOf(current.phase);
      return { containerId: run?.instanceId ?? '', startedAtMs: run?.startedAtMs ?? 0 };
    }
    if (this.unsettled.has(executionId) || this.repairing.has(executionId)) {
      // Its instance from before a crash may still run: launching it again could run the job twice.
      throw new LaunchError(GrpcStatus.UNAVAILABLE, `broker ${this.config.brokerId} has not reconciled what it holds of execution ${executionId} yet; try again`);
    }
    if (this.running >= this.config.capacity) {
      throw new LaunchError(GrpcStatus.RESOURCE_EXHAUSTED, `broker ${this.config.brokerId} is full (${this.config.capacity} containers)`);
    }
    let settle!: (reply: Promise<LaunchReply>) => void;
    const reply = new Promise<LaunchReply>((resolve) => (settle = resolve));
    const instance: Instance = {
      executionId,
      ownerId,
      output: this.outputOf(executionId),
      timeoutMs: spec.timeoutMs,
      diskLimitBytes: spec.diskBytes,
      phase: { name: 'provisioning', reply, stopAsked: null },
    };
    this.instances.set(executionId, instance);
    settle(this.provision(instance, spec));
    return reply;
  }

  private outputOf(executionId: string, resumeAt?: StreamOffsets): OutputPublisher {
    return new OutputPublisher(this.bus, executionId, this.config.maxOutputBytes, { signal: this.shutdown.signal, ...(resumeAt ? { resumeAt } : {}) });
  }

  /** Retries a step that must happen (see untilDone) while its dependency is away. */
  private persist<T>(log: Logger, step: string, call: () => Promise<T>, retryable: (err: unknown) => boolean = isUnavailable): Promise<T> {
    return untilDone(call, { log, step, retryable, signal: this.shutdown.signal });
  }

  /**
   * Until the job is started, any failure leaves nothing behind: a dependency that is away (PostgreSQL)
   * undoes the launch and answers UNAVAILABLE, so the scheduler tries again; anything else ends the
   * execution as not started. Once the job runs, nothing can report it as failed to start: its start is
   * recorded and announced however long PostgreSQL or NATS take to come back.
   */
  private async provision(instance: Instance, sealedSpec: ExecutionSpec): Promise<LaunchReply> {
    const { executionId, ownerId } = instance;
    const log = this.log.child({ executionId });
    let claimed;
    try {
      claimed = await this.store.claim(executionId, this.config.brokerId, ownerId);
    } catch (err) {
      this.instances.delete(executionId);
      if (isUnavailable(err)) throw new LaunchError(GrpcStatus.UNAVAILABLE, `${err.message}; nothing was started, try again`);
      throw err;
    }
    const { row, created } = claimed;
    if (!created && (row.state !== 'provisioning' || row.exit)) {
      // Launched before (a retried request): the first launch owns it; reconciliation watches it.
      this.instances.delete(executionId);
      return { containerId: row.containerId ?? '', startedAtMs: row.startedAtMs ?? 0 };
    }
    const image = sealedSpec.image || this.config.defaultImage;
    let spec: ExecutionSpec;
    let made: CreatedInstance;
    let outputDone: Promise<void>;
    try {
      spec = await this.withInputs(this.unseal(sealedSpec, executionId));
      let sshPassword: string | undefined;
      if (runsSshd(spec)) {
        sshPassword = randomBytes(18).toString('base64url');
        // Kept sealed: the table holds nothing that logs in.
        await this.store.setSshPassword(executionId, this.specKey.seal(sshPassword, sshAssociated(executionId)).toString('base64'));
      }
      // Up before the job: its first request through the proxy finds it listening once the relay is.
      await this.egress.start(executionId, spec.egress);
      const labels = { brokerId: this.config.brokerId, executionId, ownerId, deadlineMs: Date.now() + spec.timeoutMs };
      const createStartedAtMs = Date.now();
      made = await this.retrying(log, 'create', () =>
        this.provider.create({ labels, spec, image, pidsLimit: this.config.pidsLimit, ...(sshPassword === undefined ? {} : { sshPassword }) }, (line) =>
          instance.output.system(line),
        ),
      );
      if (made.imageBuildMs > 0) this.metrics.startPhaseTook('image_build', made.imageBuildMs);
      this.metrics.startPhaseTook('container_create', Date.now() - createStartedAtMs - made.imageBuildMs);
      await this.store.containerCreated(executionId, made.instanceId);
      const frames = await this.retrying(log, 'attach', () => this.provider.attach(executionId, { replay: false }));
      // From asking the engine to start: a quick job prints before the engine's answer to start arrives.
      let startAskedAtMs = 0;
      outputDone = this.pump(instance, frames, () => {
        if (startAskedAtMs > 0) this.metrics.startPhaseTook('first_output', Date.now() - startAskedAtMs);
      });
      startAskedAtMs = Date.now();
      await this.retrying(log, 'start', () => this.provider.start(executionId));
    } catch (err) {
      if (isUnavailable(err)) return this.undoLaunch(instance, log, err);
      const detail = (err as Error).message;
      log.warn({ err }, 'provisioning failed');
      instance.output.system(`could not start the job: ${detail}`);
      // The end is recorded and published in the background, however long that takes; the caller hears now.
      void this.finish(instance, {
        cause: ExitCause[ExitCause.EXIT_CAUSE_PROVISIONING_FAILED],
        exitCode: null,
        detail,
        artifactsSaved: false,
        finishedAtMs: Date.now(),
      }).catch((finishErr: unknown) => this.finishFailed(instance, finishErr));
      throw new LaunchError(GrpcStatus.FAILED_PRECONDITION, detail);
    }
    return this.started(instance, spec, made, image, outputDone, log);
  }

  /**
   * The job runs: it is announced (published before it is recorded, so that a crash in between is repaired
   * by the next process, which announces every instance whose start its table lacks) and watched.
   */
  private async started(instance: Instance, spec: ExecutionSpec, made: CreatedInstance, image: string, outputDone: Promise<void>, log: Logger): Promise<LaunchReply> {
    const { executionId } = instance;
    const startedAtMs = Date.now();
    const deadlineMs = startedAtMs + spec.timeoutMs;
    this.relays.start(executionId, this.egress.endpointsOf(executionId));
    try {
      await this.announceStarted(log, executionId, made.instanceId, startedAtMs);
      await this.persist(log, 'recording the start', () => this.store.started(executionId, made.instanceId, startedAtMs, deadlineMs));
    } catch (err) {
      if (err instanceof BrokerStoppingError) throw new LaunchError(GrpcStatus.UNAVAILABLE, 'broker is shutting down; the next broker process takes over this execution');
      // Not something time mends (a statement the database refuses): the job runs all the same, and its end is recorded.
      log.error({ err }, 'the start of a running job could not be recorded');
    }
    log.info({ containerId: made.instanceId.slice(0, 12), image }, 'instance started');
    const run: Run = {
      instanceId: made.instanceId,
      startedAtMs,
      outputDone,
      deadline: this.armDeadline(instance, deadlineMs),
      diskWatch: this.watchDisk(instance),
      usage: this.usage.start(executionId, startedAtMs),
    };
    const asked = instance.phase.name === 'provisioning' ? instance.phase.stopAsked : null;
    instance.phase = { name: 'running', run };
    if (asked) void this.requestStop(instance, asked, this.config.stopGraceMs);
    void this.watch(instance, run, spec.memoryBytes);
    return { containerId: made.instanceId, startedAtMs };
  }

  private announceStarted(log: Logger, executionId: string, containerId: string, startedAtMs: number): Promise<unknown> {
    const message = { executionId, brokerId: this.config.brokerId, containerId, startedAtMs };
    return this.persist(log, 'publishing the start', () =>
      onBus('publish instance started', () => this.bus.publish(topics.instanceStarted, executionId, message, { msgId: `${executionId}.started`, retryForMs: 5_000 })),
    );
  }

  /**
   * A launch that met an unavailable dependency before its job started: what it made is removed (the
   * instance, then the row), so that the same Launch tried again starts afresh. What cannot be removed now
   * (PostgreSQL still away) is a launch that never ran, which reconciliation forgets.
   */
  private async undoLaunch(instance: Instance, log: Logger, err: DatabaseUnavailableError | BusUnavailableError): Promise<never> {
    const { executionId } = instance;
    log.warn({ err: err.message }, 'a dependency is unavailable while provisioning; removing what the launch made');
    await this.egress.stop(executionId, { forget: true });
    await this.retrying(log, 'remove', () => this.provider.remove(executionId)).catch((removeErr: unknown) =>
      log.error({ err: removeErr }, 'removing the instance of an undone launch failed; the next reconciliation removes it'),
    );
    await this.store.forget(executionId).catch((forgetErr: unknown) => log.warn({ err: (forgetErr as Error).message }, 'the row of an undone launch is left for reconciliation to forget'));
    this.instances.delete(executionId);
    throw new LaunchError(GrpcStatus.UNAVAILABLE, `${err.message}; nothing was started, try again`);
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
      return unsealSpec(spec, this.specKey, executionId);
    } catch (err) {
      throw new Error(`the execution's secrets do not open with this broker's spec key (${this.config.specKeyFile}; it must be the gateway's PADDOCK_SPEC_KEY_FILE)`, { cause: err });
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
  private async pump(instance: Instance, frames: AsyncIterable<OutputFrame>, onFirstFrame?: () => void): Promise<void> {
    try {
      for await (const frame of frames) {
        onFirstFrame?.();
        onFirstFrame = undefined;
        instance.output.write(frame.stream, frame.data);
      }
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
    const log = this.log.child({ executionId: instance.executionId });
    // Recorded for a broker that adopts the job after a crash; stopping it need not wait for PostgreSQL.
    void this.persist(log, 'recording the stop cause', () => this.store.stopping(instance.executionId, cause)).catch((err: unknown) =>
      log.warn({ err: (err as Error).message }, 'recording the stop cause failed'),
    );
    await this.retrying(log, 'stop', () => this.provider.stop(instance.executionId, graceMs)).catch((err: unknown) => log.warn({ err }, 'stop failed'));
  }

  /** The running instance of an execution on this broker, or a NOT_FOUND error. */
  private async runningRow(executionId: string): Promise<{ sshPassword: string | null }> {
    const row = await this.store.get(executionId);
    if (!row || row.brokerId !== this.config.brokerId || row.state !== 'running' || !row.containerId) {
      throw new LaunchError(GrpcStatus.NOT_FOUND, `execution ${executionId} has no running instance on broker ${this.config.brokerId}`);
    }
    const sshPassword = row.sshPassword === null ? null : this.specKey.open(Buffer.from(row.sshPassword, 'base64'), sshAssociated(executionId));
    return { sshPassword };
  }

  /**
   * The login to the instance's sshd (port INSTANCE_SSH_PORT inside). sshd is reached only through the
   * relay: no provider publishes it on a host, so the reply's host and port stay empty.
   */
  async access(executionId: string): Promise<AccessReply> {
    const { sshPassword } = await this.runningRow(executionId);
    if (!sshPassword) {
      throw new LaunchError(GrpcStatus.FAILED_PRECONDITION, 'this instance runs no sshd: only agents and services do (a shell or Python job started with service: true)');
    }
    return { username: 'agent', password: sshPassword };
  }

  /** A byte stream to 127.0.0.1:port inside a running instance of this broker (the Relay RPC); NOT_FOUND otherwise. */
  async reachPort(executionId: string, port: number): Promise<Duplex> {
    await this.runningRow(executionId);
    try {
      return await this.provider.reachPort(executionId, port);
    } catch (err) {
      if (err instanceof InstanceNotFoundError) throw new LaunchError(GrpcStatus.NOT_FOUND, `execution ${executionId} has no running instance on broker ${this.config.brokerId}`);
      throw err;
    }
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
    const repair = this.repairing.get(executionId);
    if (repair) await repair;
    const held = this.instances.get(executionId);
    if (held) return this.cancel(executionId, graceMs);
    const row = await this.store.get(executionId);
    if (row === null || row.state === 'ended') return false;
    if (row.exit) return true;
    // Not held yet (reconciliation has still to adopt it): the cause is recorded, and applied on adoption.
    await this.store.stopping(executionId, 'cancelled');
    const adopted = this.instances.get(executionId);
    if (adopted) await this.requestStop(adopted, 'cancelled', graceMs);
    return true;
  }

  /**
   * Waits for the job's end, works out how it ended, saves the workspace and finishes. The engine, PostgreSQL
   * or NATS being away only delays this: the instance stays held (and named in the heartbeat) meanwhile.
   */
  private async watch(instance: Instance, run: Run, memoryBytes: number, endSeen = true): Promise<void> {
    const { executionId } = instance;
    const log = this.log.child({ executionId });
    try {
      let exitCode: number;
      try {
        exitCode = await this.persist(log, 'waiting for the job to end', () => this.provider.wait(executionId), isTransientProviderError);
      } catch (err) {
        if (!(err instanceof InstanceNotFoundError)) throw err;
        // Removed by someone else while it ran: there is no exit code to report, nor a workspace to save.
        clearRun(run);
        instance.output.system('the container disappeared while the job ran');
        const exit = { cause: ExitCause[ExitCause.EXIT_CAUSE_LOST], exitCode: null, detail: 'the container disappeared while the job ran', artifactsSaved: false, finishedAtMs: Date.now() };
        await this.finish(instance, exit, { endedAtMs: null });
        return;
      }
      // The engine tells of the end within milliseconds: the job's wall time ends here.
      const usageEnd: UsageEnd = { endedAtMs: endSeen ? Date.now() : null };
      const phase = instance.phase;
      const stopCause = phase.name === 'stopping' ? phase.cause : null;
      instance.phase = { name: 'ending', run };
      clearRun(run);
      // A job that filled its workspace and ended before the next look is caught here.
      const diskFull = stopCause === 'disk_full' || (instance.diskLimitBytes > 0 && !stopCause && (await this.provider.workspaceFull(executionId).catch(() => false)));
      // A clean exit that Paddock did not cause needs nothing more from the provider (one call less per job).
      const info =
        exitCode === 0 && !stopCause
          ? null
          : await this.persist(log, 'inspecting the ended job', () => this.provider.inspect(executionId), isTransientProviderError).catch((err: unknown) => {
              if (err instanceof InstanceNotFoundError) return null;
              throw err;
            });
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
      await this.finish(instance, { cause: ExitCause[cause], exitCode, detail, artifactsSaved, finishedAtMs: Date.now() }, usageEnd);
    } catch (err) {
      this.finishFailed(instance, err);
    }
  }

  /**
   * The end of an instance could not be completed. The broker stopping leaves it to the next process, which
   * adopts the instance; anything else is not a dependency being away but an error time does not mend: the
   * instance is let go and reconciliation, which starts over from the engine and the table, finishes it.
   */
  private finishFailed(instance: Instance, err: unknown): void {
    if (err instanceof BrokerStoppingError || this.stopping) return;
    const { executionId } = instance;
    this.log.error({ err, executionId }, 'finishing the instance failed; reconciliation finishes it');
    if (this.instances.get(executionId) === instance) this.instances.delete(executionId);
    this.unsettled.add(executionId);
    this.scheduleReconcile(1_000);
  }

  /** The workspace as a ZIP, read from where the provider keeps it. */
  private async saveWorkspace(instance: Instance): Promise<boolean> {
    const { executionId } = instance;
    try {
      const content = await this.retrying(this.log.child({ executionId }), 'workspace', () => this.provider.workspace(executionId));
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
   * The end, in an order that survives a crash at any step: output closed, final compute usage published
   * (while the execution's cgroup still tells its figures), exit recorded, instance removed, exit published,
   * row ended. Each step is retried while its dependency is away, the instance held in its `ending` phase
   * meanwhile; it is let go only once every step is done.
   */
  private async finish(instance: Instance, exit: ExitRecord, usageEnd: UsageEnd = { endedAtMs: null }): Promise<void> {
    const { executionId } = instance;
    const log = this.log.child({ executionId });
    const run = runOf(instance.phase);
    instance.phase = { name: 'ending', run };
    if (run) clearRun(run);
    await this.relays.stop(executionId);
    await this.egress.stop(executionId, { forget: true });
    // Waits for NATS as long as it is away; fails only for what NATS can never take, or the broker stopping.
    await instance.output.end().catch((err: unknown) => {
      if (this.stopping) throw new BrokerStoppingError('publishing the end of the output');
      log.error({ err }, 'output incomplete');
    });
    // Before the exit is recorded: a broker that finds an exit recorded finishes without adopting, so no meter.
    await run?.usage?.end(usageEnd);
    await this.persist(log, 'recording the exit', () => this.store.exited(executionId, exit));
    await this.removeInstance(executionId, log);
    await this.publishExit(executionId, run?.startedAtMs ?? 0, exit, log);
    this.instances.delete(executionId);
  }

  /**
   * Removes the instance, trying again while the provider fails in a way that may pass; one it cannot remove
   * for another reason is left to the next reconciliation, which retries.
   */
  private async removeInstance(executionId: string, log: Logger): Promise<void> {
    await this.persist(log, 'removing the instance', () => this.provider.remove(executionId), isTransientProviderError).catch((err: unknown) => {
      if (err instanceof BrokerStoppingError) throw err;
      log.error({ err }, 'removing the instance failed; the next reconciliation retries');
    });
  }

  /**
   * Publishes the exit, then ends the row; each retried until done, or tried `once` by reconciliation, which
   * must not wait on one execution while others wait for it (a failure is tried again by its next pass).
   */
  private async publishExit(executionId: string, startedAtMs: number, exit: ExitRecord, log: Logger, opts: { once?: boolean } = {}): Promise<void> {
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
    const step = <T>(name: string, call: () => Promise<T>): Promise<T> => (opts.once ? call() : this.persist(log, name, call));
    await step('publishing the exit', () =>
      onBus('publish instance exited', () => this.bus.publish(topics.instanceExited, executionId, message, { msgId: `${executionId}.exited`, retryForMs: 5_000 })),
    );
    await step('ending the row', () => this.store.ended(executionId));
    log.info({ cause: exit.cause, exitCode: exit.exitCode }, 'instance ended');
  }

  /**
   * Brings the provider's instances and this broker's table back in line, logging each repair: every
   * instance labelled with this broker's id is adopted (watched to its end, its output resumed from where
   * the last process stopped publishing) or, when its execution has ended, removed; every live row without
   * an instance gets the end it had recorded, or is reported lost; a launch that never started its job
   * (no instance, or one never started) is forgotten, so that its scheduler launches it again; workspaces
   * of ended executions go. Runs at start and then periodically, one run at a time, and never fails: what
   * it cannot settle now (PostgreSQL or NATS away) stays held and is tried again within seconds.
   */
  reconcile(): Promise<void> {
    this.reconciling ??= this.reconcilePass().finally(() => (this.reconciling = null));
    return this.reconciling;
  }

  private async reconcilePass(): Promise<void> {
    let settled = false;
    try {
      settled = await this.reconcileOnce();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'reconciliation failed; trying again soon');
    }
    if (settled || this.stopping) {
      this.failedPasses = 0;
      return;
    }
    this.failedPasses++;
    this.scheduleReconcile(Math.min(10_000, 500 * 2 ** Math.min(this.failedPasses - 1, 5)));
  }

  private scheduleReconcile(delayMs: number): void {
    if (this.stopping || this.reconcileRetry) return;
    this.reconcileRetry = setTimeout(() => {
      this.reconcileRetry = null;
      void this.reconcile();
    }, delayMs);
    this.reconcileRetry.unref();
  }

  /** One pass; true when everything was settled. */
  private async reconcileOnce(): Promise<boolean> {
    const found = await this.provider.list({ brokerId: this.config.brokerId });
    const seen = new Set(found.map((s) => s.labels.executionId));
    let live: InstanceRow[] | null = null;
    try {
      live = await this.store.live(this.config.brokerId);
    } catch (err) {
      if (!isUnavailable(err)) throw err;
      this.log.warn({ err: err.message }, 'reconcile: the table cannot be read now; the instances are reconciled, the rows later');
    }
    const previous = this.unsettled;
    // Everything of this broker's not held by an instance stays named in the heartbeat until it is settled.
    const rows = live === null ? [...previous] : live.map((r) => r.executionId);
    this.unsettled = new Set([...seen, ...rows].filter((id) => !this.instances.has(id)));
    let settled = true;
    for (const summary of found) {
      settled = (await this.settle(summary.labels.executionId, () => this.reconcileInstance(summary))) && settled;
    }
    if (live === null) return false;
    for (const row of live) {
      if (seen.has(row.executionId)) continue;
      settled = (await this.settle(row.executionId, () => this.reconcileRow(row))) && settled;
    }
    for (const executionId of await this.provider.leftovers(this.config.brokerId)) {
      if (seen.has(executionId)) continue;
      settled = (await this.settle(executionId, () => this.removeLeftovers(executionId))) && settled;
    }
    // Only once everything found is settled: an execution not yet repaired may still need its cgroup's figures.
    if (settled) await this.usage.sweep((id) => this.instances.has(id) || this.unsettled.has(id) || this.repairing.has(id));
    return settled;
  }

  /**
   * Runs one repair, unless the execution is held by an instance (launched or adopted meanwhile). A Launch
   * of the same execution waits for it. A failure leaves the execution unsettled (held) for the next pass.
   */
  private async settle(executionId: string, repair: () => Promise<void>): Promise<boolean> {
    if (this.stopping) return true;
    if (this.instances.has(executionId) || this.repairing.has(executionId)) {
      this.unsettled.delete(executionId);
      return true;
    }
    let done!: () => void;
    this.repairing.set(executionId, new Promise<void>((resolve) => (done = resolve)));
    try {
      await repair();
      this.unsettled.delete(executionId);
      return true;
    } catch (err) {
      if (!(err instanceof BrokerStoppingError)) this.log.warn({ err: (err as Error).message, executionId }, 'reconcile: could not settle this execution now; the next pass tries again');
      return false;
    } finally {
      this.repairing.delete(executionId);
      done();
    }
  }

  private async reconcileInstance(summary: InstanceSummary): Promise<void> {
    const { executionId } = summary.labels;
    const log = this.log.child({ executionId });
    const row = await this.store.get(executionId);
    if (row?.state === 'ended' || row?.exit) {
      log.warn({ instanceId: summary.instanceId.slice(0, 12) }, 'reconcile: removing the instance of an ended execution');
      await this.removeInstance(executionId, log);
      if (row.state !== 'ended' && row.exit) await this.publishExit(executionId, row.startedAtMs ?? 0, row.exit, log, { once: true });
      return;
    }
    if (summary.state === 'created') {
      // The broker died between creating and starting it: the job never ran, so it is safe to run it again.
      log.warn('reconcile: an instance created but never started is forgotten; its scheduler launches it again');
      await this.forget(executionId, log);
      return;
    }
    await this.adopt(executionId, summary.labels.ownerId || row?.ownerId || '', row);
  }

  private async reconcileRow(row: InstanceRow): Promise<void> {
    const { executionId } = row;
    const log = this.log.child({ executionId });
    if (row.exit) {
      log.warn('reconcile: publishing the recorded end of an instance that is gone');
      await this.removeInstance(executionId, log);
      await this.publishExit(executionId, row.startedAtMs ?? 0, row.exit, log, { once: true });
      return;
    }
    if (row.state === 'provisioning') {
      log.warn('reconcile: a launch that never started its job is forgotten; its scheduler launches it again');
      await this.forget(executionId, log);
      return;
    }
    log.warn('reconcile: the instance is gone; reporting the execution lost');
    await this.endWithoutInstance(executionId, row.startedAtMs ?? 0, ExitCause.EXIT_CAUSE_LOST, 'the container disappeared while its broker was down', log);
  }

  private async removeLeftovers(executionId: string): Promise<void> {
    const row = await this.store.get(executionId);
    if (row?.brokerId !== this.config.brokerId || row.state !== 'ended') return;
    const log = this.log.child({ executionId });
    log.warn('reconcile: removing what is left of an ended execution');
    await this.removeInstance(executionId, log);
  }

  /**
   * A launch whose job never started leaves no trace: its instance and its row go and nothing is published,
   * so the execution is still `provisioning` to its scheduler, which launches it again (here or elsewhere).
   */
  private async forget(executionId: string, log: Logger): Promise<void> {
    await this.removeInstance(executionId, log);
    if (!(await this.store.forget(executionId))) log.warn('reconcile: the row of the forgotten launch had moved on; left as it is');
  }

  private async endWithoutInstance(executionId: string, startedAtMs: number, cause: ExitCause, detail: string, log: Logger): Promise<void> {
    await this.removeInstance(executionId, log);
    const output = this.outputOf(executionId);
    output.system(detail);
    await output.end();
    // Its cgroup outlives the container: the CPU it used is still there, and the cgroup goes with the final event.
    await (await this.usage.resume(executionId, startedAtMs))?.end({ endedAtMs: null });
    const exit = { cause: ExitCause[cause], exitCode: null, detail, artifactsSaved: false, finishedAtMs: Date.now() };
    await this.store.exited(executionId, exit);
    await this.publishExit(executionId, startedAtMs, exit, log, { once: true });
  }

  private async adopt(executionId: string, ownerId: string, row: InstanceRow | null): Promise<void> {
    const log = this.log.child({ executionId });
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
    if (row?.state === 'provisioning') {
      // Started, but the process that started it died before recording it: announced and recorded now.
      log.warn('reconcile: an instance started but not recorded as started; announcing its start');
      await onBus('publish instance started', () =>
        this.bus.publish(topics.instanceStarted, executionId, { executionId, brokerId: this.config.brokerId, containerId: info.instanceId, startedAtMs }, { msgId: `${executionId}.started`, retryForMs: 5_000 }),
      );
      await this.store.started(executionId, info.instanceId, startedAtMs, deadlineMs);
    }
    const published = await this.publishedOffsets(executionId);
    const output = this.outputOf(executionId, published === 'ended' ? undefined : published);
    const instance: Instance = {
      executionId,
      ownerId,
      output,
      timeoutMs: Math.max(0, deadlineMs - startedAtMs),
      diskLimitBytes: info.diskLimitBytes,
      phase: { name: 'ending', run: null },
    };
    // Its usage goes on from the last event the previous process published.
    const usage = await this.usage.resume(executionId, startedAtMs);
    let outputDone = Promise.resolve();
    // The job's output from its start, less what was already published, byte for byte per stream.
    if (published !== 'ended') outputDone = this.pump(instance, skipPublished(published, await this.provider.attach(executionId, { replay: true })));
    const run: Run = {
      instanceId: info.instanceId,
      startedAtMs,
      outputDone,
      deadline: info.running && deadlineMs > 0 ? this.armDeadline(instance, deadlineMs) : null,
      diskWatch: info.running ? this.watchDisk(instance) : null,
      usage,
    };
    const stopCause = row?.stopCause ?? null;
    instance.phase = stopCause ? { name: 'stopping', run, cause: stopCause } : { name: 'running', run };
    this.instances.set(executionId, instance);
    this.unsettled.delete(executionId);
    if (info.running) usage?.start();
    log.info({ containerId: info.instanceId.slice(0, 12), running: info.running }, 'reconcile: adopted instance');
    if (info.running) {
      await this.egress.resume(executionId).catch((err: unknown) => log.error({ err }, 'reconcile: the egress proxy of an adopted instance could not start again; it has no way out'));
      this.relays.start(executionId, this.egress.endpointsOf(executionId));
    }
    if (info.running && stopCause) void this.halt(instance, stopCause, this.config.stopGraceMs);
    // A job that ended while no broker watched ended at a time nobody saw.
    void this.watch(instance, run, info.memoryLimitBytes, info.running);
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
    this.shutdown.abort();
    // The relays die with this process anyway; the next process offers the endpoints again when it adopts.
    await this.relays.stopAll();
    await this.egress.stopAll();
    await this.usage.stop();
    if (this.reconcileRetry) clearTimeout(this.reconcileRetry);
    this.reconcileRetry = null;
    for (const instance of this.instances.values()) {
      const run = runOf(instance.phase);
      if (run) clearRun(run);
    }
    await this.reconciling;
  }
}
