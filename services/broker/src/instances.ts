import type Docker from 'dockerode';
import type { Container } from 'dockerode';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { topics, type Bus } from '@paddock/bus';
import { ExitCause, OutputStream, type AccessReply, type ExecOutput, type ExecRequest, type ExecutionSpec, type InstanceExited, type LaunchReply, type LaunchRequest } from '@paddock/proto';
import { unsealSpec, type SecretBox } from '@paddock/secrets';
import type { Logger } from '@paddock/telemetry';
import { saveArtifacts, saveDirectoryArtifacts } from './artifacts.js';
import type { BrokerConfig } from './config.js';
import { containerSpec, hasSsh, WORKSPACE } from './docker/containerSpec.js';
import { DockerDemuxer, skippingPublished, type StreamOffsets } from './docker/demux.js';
import { ImageBuilder } from './docker/imageBuilder.js';
import { labels } from './docker/labels.js';
import { workspaceArchive } from './docker/workspaceArchive.js';
import { HostWorkspaces } from './hostWorkspaces.js';
import type { ExitRecord, InstanceStore, StopCause } from './instanceStore.js';
import { OutputPublisher } from './output.js';

/** A gRPC-shaped error: grpc-js sends `code` and `details` to the caller as they are. */
export class LaunchError extends Error {
  constructor(
    readonly code: GrpcStatus,
    readonly details: string,
  ) {
    super(details);
    this.name = 'LaunchError';
  }
}

interface Live {
  readonly executionId: string;
  readonly ownerId: string;
  readonly output: OutputPublisher;
  container: Container | null;
  stopCause: StopCause | null;
  deadlineTimer: NodeJS.Timeout | null;
  startedAtMs: number;
  /** Resolves when Docker's output stream of the container has ended. */
  outputDone: Promise<void>;
  /** The launch in progress, to answer a retried Launch with the same result. */
  launching: Promise<LaunchReply> | null;
  /** The end is being recorded: too late to cancel. */
  finishing: boolean;
  /** The host folder mounted at /workspace, when the workspace is one (PADDOCK_WORKSPACE_MODE=bind). */
  workspaceDir: string | null;
  /** The time limit the deadline was set from, for the reason of a timeout. */
  timeoutMs: number;
}

const MiB = 1024 * 1024;
const IMAGE_INFO_TTL_MS = 5_000;

function sshAssociated(executionId: string): string {
  return `paddock.ssh.v1/${executionId}`;
}

function dockerStatus(err: unknown): number | undefined {
  return (err as { statusCode?: number })?.statusCode;
}

/**
 * The containers of this broker: launches them, watches each to its end, saves the workspace, publishes
 * the exit, removes the container, and after a restart adopts what a previous process left running.
 */
export class InstanceManager {
  private readonly live = new Map<string, Live>();
  private readonly images: ImageBuilder;
  private readonly workspaces: HostWorkspaces;
  /** Image details for a few seconds: a burst of jobs on one image asks the engine once. */
  private readonly imageInfo = new Map<string, { info: Docker.ImageInspectInfo; atMs: number }>();
  private stopping = false;

  constructor(
    private readonly docker: Docker,
    private readonly bus: Bus,
    private readonly store: InstanceStore,
    private readonly config: BrokerConfig,
    private readonly log: Logger,
    private readonly box: SecretBox,
  ) {
    this.images = new ImageBuilder(config.imagesDir);
    this.workspaces = new HostWorkspaces(config.workspacesDir);
  }

  get running(): number {
    return this.live.size;
  }

  /** Every execution this broker holds an instance for: launching, running or ending. */
  get executionIds(): string[] {
    return [...this.live.keys()];
  }

  async launch(req: LaunchRequest): Promise<LaunchReply> {
    const { executionId, ownerId } = req;
    const spec = req.spec;
    if (!spec) throw new LaunchError(GrpcStatus.INVALID_ARGUMENT, 'spec is required');
    if (this.stopping) throw new LaunchError(GrpcStatus.UNAVAILABLE, 'broker is shutting down');
    const current = this.live.get(executionId);
    if (current) {
      if (current.launching) return current.launching;
      return { containerId: current.container?.id ?? '', startedAtMs: current.startedAtMs };
    }
    if (this.live.size >= this.config.capacity) {
      throw new LaunchError(GrpcStatus.RESOURCE_EXHAUSTED, `broker ${this.config.brokerId} is full (${this.config.capacity} containers)`);
    }
    const live: Live = {
      executionId,
      ownerId,
      output: new OutputPublisher(this.bus, executionId, this.config.maxOutputBytes),
      container: null,
      stopCause: null,
      deadlineTimer: null,
      startedAtMs: 0,
      outputDone: Promise.resolve(),
      launching: null,
      finishing: false,
      workspaceDir: null,
      timeoutMs: spec.timeoutMs,
    };
    this.live.set(executionId, live);
    const launching = this.provision(live, spec);
    live.launching = launching;
    try {
      return await launching;
    } finally {
      live.launching = null;
    }
  }

  private async provision(live: Live, sealedSpec: ExecutionSpec): Promise<LaunchReply> {
    const { executionId, ownerId } = live;
    const log = this.log.child({ executionId });
    const { row, created } = await this.store.claim(executionId, this.config.brokerId, ownerId);
    if (!created && row.state !== 'provisioning') {
      // Launched before (a retried request): the first launch owns it; reconciliation watches it.
      this.live.delete(executionId);
      return { containerId: row.containerId ?? '', startedAtMs: row.startedAtMs ?? 0 };
    }
    const image = sealedSpec.image || this.config.defaultImage;
    try {
      const spec = this.unseal(sealedSpec, executionId);
      const imageInfo = await this.inspectOrBuild(image, live);
      const imageIsOurs = Boolean(imageInfo.Config?.Labels?.['io.paddock.image']);
      if (!created) await this.removeContainer(`paddock-${executionId}`);
      const deadlineMs = Date.now() + spec.timeoutMs;
      let sshPassword: string | undefined;
      if (hasSsh(spec)) {
        sshPassword = randomBytes(18).toString('base64url');
        // Kept sealed: the table holds nothing that logs in.
        await this.store.setSshPassword(executionId, this.box.seal(sshPassword, sshAssociated(executionId)).toString('base64'));
      }
      const workspaceDir = this.config.workspaceMode === 'bind' ? await this.workspaces.prepare(executionId, spec.files) : undefined;
      live.workspaceDir = workspaceDir ?? null;
      const archive = await workspaceArchive(spec, imageIsOurs, { workspaceOnHost: workspaceDir !== undefined, ...(sshPassword === undefined ? {} : { sshPassword }) });
      const container = await this.docker.createContainer(
        containerSpec({
          executionId,
          ownerId,
          brokerId: this.config.brokerId,
          spec,
          image,
          pidsLimit: this.config.pidsLimit,
          deadlineMs,
          sshHost: this.config.sshHost,
          ...(workspaceDir === undefined ? {} : { workspaceDir }),
        }),
      );
      live.container = container;
      const [, , stream] = await Promise.all([
        this.store.containerCreated(executionId, container.id),
        archive ? container.putArchive(archive, { path: '/' }) : Promise.resolve(),
        container.attach({ stream: true, stdout: true, stderr: true }) as Promise<NodeJS.ReadableStream>,
      ]);
      live.outputDone = this.pipeOutput(stream as Readable, (s, d) => live.output.write(s, d));
      await container.start();
      live.startedAtMs = Date.now();
      const effectiveDeadline = live.startedAtMs + spec.timeoutMs;
      await this.store.started(executionId, container.id, live.startedAtMs, effectiveDeadline);
      await this.bus.publish(
        topics.instanceStarted,
        executionId,
        { executionId, brokerId: this.config.brokerId, containerId: container.id, startedAtMs: live.startedAtMs },
        { msgId: `${executionId}.started` },
      );
      log.info({ containerId: container.id.slice(0, 12), image }, 'instance started');
      this.armDeadline(live, effectiveDeadline, spec.timeoutMs);
      if (live.stopCause) void this.stopContainer(live, live.stopCause, this.config.stopGraceMs);
      void this.watch(live, spec.memoryBytes);
      return { containerId: container.id, startedAtMs: live.startedAtMs };
    } catch (err) {
      const detail = (err as Error).message;
      log.warn({ err }, 'provisioning failed');
      live.output.system(`could not start the job: ${detail}`);
      await this.finish(live, {
        cause: ExitCause[ExitCause.EXIT_CAUSE_PROVISIONING_FAILED],
        exitCode: null,
        detail,
        artifactsSaved: false,
        finishedAtMs: Date.now(),
      });
      throw new LaunchError(GrpcStatus.FAILED_PRECONDITION, detail);
    }
  }

  private unseal(spec: ExecutionSpec, executionId: string): ExecutionSpec {
    try {
      return unsealSpec(spec, this.box, executionId);
    } catch (err) {
      throw new Error(`the execution's secrets do not open with this broker's key (${this.config.secretKeyFile} must be the gateway's): ${(err as Error).message}`, { cause: err });
    }
  }

  /** The image's details; one of Paddock's own that is missing is built first, its progress in the execution's log. */
  private async inspectOrBuild(image: string, live: Live): Promise<Docker.ImageInspectInfo> {
    const cached = this.imageInfo.get(image);
    if (cached && Date.now() - cached.atMs < IMAGE_INFO_TTL_MS) return cached.info;
    try {
      const info = await this.docker.getImage(image).inspect();
      this.imageInfo.set(image, { info, atMs: Date.now() });
      return info;
    } catch (err) {
      if (dockerStatus(err) !== 404) throw err;
    }
    const recipe = this.images.recipeFor(image);
    if (recipe === undefined) throw new Error(`image ${image} is not in the Docker engine: build it (paddock images build) or pull it first`);
    const startedAt = Date.now();
    live.output.system(`image ${image} is not built yet: building it now (images/${recipe}/build.sh)`);
    this.log.info({ executionId: live.executionId, image }, 'building a missing image');
    await this.images.build(recipe, (line) => live.output.system(`  ${line}`));
    live.output.system(`built ${image} in ${Math.round((Date.now() - startedAt) / 1000)} s`);
    return this.docker.getImage(image).inspect();
  }

  private pipeOutput(stream: Readable, onFrame: (s: number, d: Buffer) => void): Promise<void> {
    const demux = new DockerDemuxer(onFrame);
    return new Promise<void>((resolve) => {
      stream.on('data', (d: Buffer) => demux.push(d));
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', () => resolve());
    });
  }

  private armDeadline(live: Live, deadlineMs: number, timeoutMs: number): void {
    const delay = Math.max(0, deadlineMs - Date.now());
    live.deadlineTimer = setTimeout(() => {
      live.output.system(`timed out after ${Math.round(timeoutMs / 1000)}s: stopping the job (SIGTERM, then SIGKILL)`);
      void this.stopContainer(live, 'timed_out', this.config.stopGraceMs);
    }, delay);
    live.deadlineTimer.unref();
  }

  private async stopContainer(live: Live, cause: StopCause, graceMs: number): Promise<void> {
    live.stopCause ??= cause;
    await this.store.stopping(live.executionId, cause).catch((err: unknown) => this.log.warn({ err }, 'recording stop cause failed'));
    if (!live.container) return;
    try {
      await live.container.stop({ t: Math.ceil(graceMs / 1000) });
    } catch (err) {
      // 304: already stopped; 404: already gone. Both are the end we wanted.
      if (dockerStatus(err) !== 304 && dockerStatus(err) !== 404) this.log.warn({ err, executionId: live.executionId }, 'stop failed');
    }
  }

  /** The running container of an execution on this broker, or a NOT_FOUND error. */
  private async runningContainer(executionId: string): Promise<{ container: Container; sshPassword: string | null }> {
    const row = await this.store.get(executionId);
    if (!row || row.brokerId !== this.config.brokerId || row.state !== 'running' || !row.containerId) {
      throw new LaunchError(GrpcStatus.NOT_FOUND, `execution ${executionId} has no running instance on broker ${this.config.brokerId}`);
    }
    const sshPassword = row.sshPassword === null ? null : this.box.open(Buffer.from(row.sshPassword, 'base64'), sshAssociated(executionId));
    return { container: this.docker.getContainer(row.containerId), sshPassword };
  }

  async access(executionId: string): Promise<AccessReply> {
    const { container, sshPassword } = await this.runningContainer(executionId);
    if (!sshPassword) {
      throw new LaunchError(GrpcStatus.FAILED_PRECONDITION, 'this instance runs no sshd: only agents and services with a network (bridge) do');
    }
    const info = await container.inspect();
    const port = Number(info.NetworkSettings.Ports?.['22/tcp']?.[0]?.HostPort ?? 0);
    if (!port) throw new LaunchError(GrpcStatus.FAILED_PRECONDITION, 'the instance has no published SSH port');
    return { sshHost: this.config.sshHost, sshPort: port, username: 'agent', password: sshPassword };
  }

  /** Runs a command in the instance as the agent user; yields its output, then one message with its exit code. */
  async *exec(req: ExecRequest): AsyncGenerator<ExecOutput> {
    if (req.cmd.length === 0) throw new LaunchError(GrpcStatus.INVALID_ARGUMENT, 'cmd is empty');
    const { container } = await this.runningContainer(req.executionId);
    const withStdin = req.stdin.length > 0;
    const exec = await container.exec({
      Cmd: req.cmd,
      User: '1000:1000',
      WorkingDir: WORKSPACE,
      Env: ['HOME=/home/agent'],
      AttachStdin: withStdin,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
    });
    const stream = (await exec.start({ hijack: withStdin, stdin: withStdin })) as NodeJS.ReadWriteStream;
    if (withStdin) stream.end(Buffer.from(req.stdin));
    const queue: ExecOutput[] = [];
    let wake: (() => void) | undefined;
    let ended = false;
    const demux = new DockerDemuxer((s, d) => {
      queue.push({ stream: s === 2 ? OutputStream.OUTPUT_STREAM_STDERR : OutputStream.OUTPUT_STREAM_STDOUT, data: d, exitCode: undefined });
      wake?.();
    });
    const finish = () => {
      ended = true;
      wake?.();
    };
    stream.on('data', (d: Buffer) => demux.push(d));
    stream.on('end', finish);
    stream.on('close', finish);
    stream.on('error', finish);
    for (;;) {
      const next = queue.shift();
      if (next) {
        yield next;
        continue;
      }
      if (ended) break;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
    // The stream can end a moment before Docker records the exit code.
    for (let i = 0; i < 50; i++) {
      const info = await exec.inspect();
      if (!info.Running && info.ExitCode !== null) {
        yield { stream: OutputStream.OUTPUT_STREAM_UNSPECIFIED, data: Buffer.alloc(0), exitCode: info.ExitCode };
        return;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error('the command ended but Docker reports no exit code');
  }

  /** SIGTERM, the grace period, SIGKILL. False when this broker holds no such execution. */
  async cancel(executionId: string, graceMs: number): Promise<boolean> {
    const live = this.live.get(executionId);
    if (live?.finishing) return false;
    if (live) {
      if (!live.stopCause) live.output.system('cancelled: stopping the job (SIGTERM, then SIGKILL after the grace period)');
      if (live.container && !live.launching) await this.stopContainer(live, 'cancelled', graceMs);
      else live.stopCause ??= 'cancelled';
      return true;
    }
    const row = await this.store.get(executionId);
    return row !== null && row.state !== 'ended';
  }

  private async watch(live: Live, memoryBytes: number): Promise<void> {
    const container = live.container!;
    try {
      const { StatusCode } = (await container.wait()) as { StatusCode: number };
      // A clean exit that Paddock did not cause needs nothing more from the engine (one call less per job).
      const info = StatusCode === 0 && !live.stopCause ? null : await container.inspect();
      const exitCode = info?.State.ExitCode ?? StatusCode;
      let cause = ExitCause.EXIT_CAUSE_EXITED;
      let detail = exitCode === 0 ? '' : `the job exited with code ${exitCode}`;
      if (live.stopCause === 'cancelled') {
        cause = ExitCause.EXIT_CAUSE_CANCELLED;
        detail = 'cancelled';
      } else if (live.stopCause === 'timed_out') {
        cause = ExitCause.EXIT_CAUSE_TIMED_OUT;
        const limitS = Math.round(live.timeoutMs / 1000);
        detail = limitS > 0 ? `timed out: the job ran longer than its ${limitS}s limit` : 'timed out';
      } else if (info?.State.OOMKilled) {
        cause = ExitCause.EXIT_CAUSE_OOM_KILLED;
        const limit = memoryBytes || info.HostConfig.Memory || 0;
        detail = `out of memory: the job used more than its ${Math.round(limit / MiB)} MiB limit and was killed`;
      }
      if (cause !== ExitCause.EXIT_CAUSE_EXITED && cause !== ExitCause.EXIT_CAUSE_CANCELLED) live.output.system(detail);
      await Promise.race([live.outputDone, new Promise((r) => setTimeout(r, 2000))]);
      const artifactsSaved = await this.saveWorkspace(live);
      await this.finish(live, { cause: ExitCause[cause], exitCode, detail, artifactsSaved, finishedAtMs: Date.now() });
    } catch (err) {
      if (this.stopping) return;
      this.log.error({ err, executionId: live.executionId }, 'watching the instance failed; reconciling it');
      this.live.delete(live.executionId);
      setTimeout(() => void this.reconcile().catch(() => {}), 1000).unref();
    }
  }

  /** The workspace as a ZIP: from its folder on this host when it is one (a bind mount), else through the engine. */
  private async saveWorkspace(live: Live): Promise<boolean> {
    if (!live.container) return false;
    try {
      if (live.workspaceDir) {
        await saveDirectoryArtifacts(live.workspaceDir, this.config.artifactsDir, live.executionId);
      } else {
        const tar = (await live.container.getArchive({ path: WORKSPACE })) as unknown as Readable;
        await saveArtifacts(tar, this.config.artifactsDir, live.executionId);
      }
      return true;
    } catch (err) {
      this.log.warn({ err, executionId: live.executionId }, 'saving the workspace failed');
      live.output.system(`the workspace could not be saved: ${(err as Error).message}`);
      return false;
    }
  }

  /**
   * The end, in an order that survives a crash at any step: output closed, exit recorded, container
   * removed, exit published, row ended.
   */
  private async finish(live: Live, exit: ExitRecord): Promise<void> {
    const { executionId } = live;
    live.finishing = true;
    if (live.deadlineTimer) clearTimeout(live.deadlineTimer);
    await live.output.end().catch((err: unknown) => this.log.error({ err, executionId }, 'output incomplete'));
    await this.store.exited(executionId, exit);
    if (live.container) await this.removeContainer(live.container.id);
    await this.workspaces.remove(executionId);
    await this.publishExit(executionId, live.startedAtMs, exit);
    this.live.delete(executionId);
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

  private async removeContainer(idOrName: string): Promise<void> {
    try {
      await this.docker.getContainer(idOrName).remove({ force: true, v: true });
    } catch (err) {
      if (dockerStatus(err) !== 404 && dockerStatus(err) !== 409) throw err;
    }
  }

  /**
   * After a restart: every container labelled with this broker's id is adopted (watched to its end, its
   * output resumed from where the last process stopped publishing); every live row without a container
   * gets the end it had recorded, or is reported lost.
   */
  async reconcile(): Promise<void> {
    const containers = await this.docker.listContainers({
      all: true,
      filters: { label: [`${labels.brokerId}=${this.config.brokerId}`] },
    });
    const seen = new Set<string>();
    for (const c of containers) {
      const executionId = c.Labels[labels.executionId];
      if (!executionId) continue;
      seen.add(executionId);
      if (this.live.has(executionId)) continue;
      const row = await this.store.get(executionId);
      if (row?.state === 'ended' || row?.exit) {
        await this.removeContainer(c.Id);
        await this.workspaces.remove(executionId);
        if (row.state !== 'ended' && row.exit) await this.publishExit(executionId, row.startedAtMs ?? 0, row.exit);
        continue;
      }
      if (c.State === 'created') {
        // The broker died between creating and starting it: the job never ran.
        await this.removeContainer(c.Id);
        await this.endUnstarted(executionId, 'the broker stopped before the job could start; it never ran');
        continue;
      }
      await this.adopt(c.Id, executionId, c.Labels[labels.owner] ?? row?.ownerId ?? '', row?.stopCause ?? null);
    }
    for (const row of await this.store.live(this.config.brokerId)) {
      if (seen.has(row.executionId) || this.live.has(row.executionId)) continue;
      if (row.exit) {
        await this.publishExit(row.executionId, row.startedAtMs ?? 0, row.exit);
        continue;
      }
      if (row.state === 'provisioning' && !row.containerId) {
        await this.endUnstarted(row.executionId, 'the broker stopped before the job could start; it never ran');
        continue;
      }
      await this.endWithoutContainer(row.executionId, row.startedAtMs ?? 0, ExitCause.EXIT_CAUSE_LOST, 'the container disappeared while its broker was down');
    }
  }

  private endUnstarted(executionId: string, detail: string): Promise<void> {
    return this.endWithoutContainer(executionId, 0, ExitCause.EXIT_CAUSE_PROVISIONING_FAILED, detail);
  }

  private async endWithoutContainer(executionId: string, startedAtMs: number, cause: ExitCause, detail: string): Promise<void> {
    await this.workspaces.remove(executionId);
    const output = new OutputPublisher(this.bus, executionId, this.config.maxOutputBytes);
    output.system(detail);
    await output.end();
    const exit = { cause: ExitCause[cause], exitCode: null, detail, artifactsSaved: false, finishedAtMs: Date.now() };
    await this.store.exited(executionId, exit);
    await this.publishExit(executionId, startedAtMs, exit);
  }

  private async adopt(containerId: string, executionId: string, ownerId: string, stopCause: StopCause | null): Promise<void> {
    const container = this.docker.getContainer(containerId);
    const info = await container.inspect();
    // Docker says 0001-01-01 for a container that never started.
    const parsedStartMs = Date.parse(info.State.StartedAt);
    const startedAtMs = parsedStartMs > 0 ? parsedStartMs : Date.now();
    const published = await this.publishedOffsets(executionId);
    const live: Live = {
      executionId,
      ownerId,
      output: new OutputPublisher(this.bus, executionId, this.config.maxOutputBytes, published === 'ended' ? undefined : published),
      container,
      stopCause,
      deadlineTimer: null,
      startedAtMs,
      outputDone: Promise.resolve(),
      launching: null,
      finishing: false,
      workspaceDir: info.Mounts?.find((m) => m.Destination === WORKSPACE && m.Type === 'bind')?.Source ?? null,
      timeoutMs: Math.max(0, Number(info.Config.Labels?.[labels.deadlineMs] ?? 0) - startedAtMs),
    };
    this.live.set(executionId, live);
    if (published !== 'ended') {
      // The container's log from its start, less what was already published, byte for byte per stream.
      const logs = (await container.logs({ follow: true, stdout: true, stderr: true })) as unknown as Readable;
      live.outputDone = this.pipeOutput(logs, skippingPublished(published, (s, d) => live.output.write(s, d)));
    }
    this.log.info({ executionId, containerId: containerId.slice(0, 12), running: info.State.Running }, 'adopted instance');
    const deadlineMs = Number(info.Config.Labels?.[labels.deadlineMs] ?? 0);
    if (info.State.Running && deadlineMs > 0) this.armDeadline(live, deadlineMs, deadlineMs - startedAtMs);
    if (info.State.Running && stopCause) void this.stopContainer(live, stopCause, this.config.stopGraceMs);
    void this.watch(live, info.HostConfig.Memory ?? 0);
  }

  /** When the last output chunk of an execution was published; Infinity if its end was already marked. */
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


  /** Stops watching; the containers keep running and the next broker process adopts them. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const live of this.live.values()) if (live.deadlineTimer) clearTimeout(live.deadlineTimer);
  }
}
