import { existsSync } from 'node:fs';
import type { Duplex, Readable } from 'node:stream';
import { NetworkMode } from '@paddock/proto';
import type Docker from 'dockerode';
import type { Container } from 'dockerode';
import { ImageUnavailableError, InstanceNotFoundError, TransientProviderError, UnsupportedSpecError } from '../../provider/errors.js';
import type {
  CreatedInstance,
  CreateRequest,
  ExecCommand,
  ExecProcess,
  InstanceInfo,
  InsideListener,
  InstanceLabels,
  InstanceStats,
  InstanceSummary,
  OutputFrame,
  Provider,
  WorkspaceContent,
} from '../../provider/provider.js';
import { containerSpec, dockerRuntimeOf, JOB_USER, WORKSPACE } from './containerSpec.js';
import { demuxFrames } from './demux.js';
import { ExecutionNetworks, HostFirewall, HostFirewallError } from './executionNetworks.js';
import { HostWorkspaces } from './hostWorkspaces.js';
import { ImageBuilder } from './imageBuilder.js';
import { labels } from './labels.js';
import { killProcessTree } from './processTree.js';
import { NamespaceConnection, listenInNamespace } from '../../relay/namespace.js';
import { workspaceArchives } from './workspaceArchive.js';

const IMAGE_INFO_TTL_MS = 5_000;

export interface DockerProviderOptions {
  /** Where images/<name>/build.sh are, to build one of Paddock's images the first time it is asked for. */
  readonly imagesDir: string;
  /** `bind`: workspaces are folders of this host (see HostWorkspaces); `archive`: through the engine. */
  readonly workspaceMode: 'bind' | 'archive';
  readonly workspacesDir: string;
  /**
   * TCP ports of the host that bridged instances may open, as host.docker.internal (a model server on
   * the host); none by default: the rest of the host never answers them (HostFirewall).
   */
  readonly hostTcpPortsOpen?: readonly number[];
}

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number })?.statusCode;
}

/**
 * An engine error as the lifecycle needs it: a 5xx, a timeout or a lost connection may pass; a 404 means
 * the container is gone; anything else is the request's fault and is passed on as it is.
 */
function classified(err: unknown, executionId: string): unknown {
  const status = statusOf(err);
  if (status === 404) return new InstanceNotFoundError(executionId);
  const code = (err as NodeJS.ErrnoException)?.code;
  if ((status !== undefined && status >= 500) || code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ENOENT' || code === 'ETIMEDOUT' || code === 'EPIPE') {
    return new TransientProviderError(`the Docker engine failed: ${(err as Error).message}`, 'docker', { cause: err });
  }
  return err;
}

function labelsOf(raw: Record<string, string> | undefined): InstanceLabels {
  return {
    brokerId: raw?.[labels.brokerId] ?? '',
    executionId: raw?.[labels.executionId] ?? '',
    ownerId: raw?.[labels.owner] ?? '',
    deadlineMs: Number(raw?.[labels.deadlineMs] ?? 0),
  };
}

/** Executions as containers of one Docker engine, named `paddock-<execution id>` and labelled (labels.ts). */
export class DockerProvider implements Provider {
  readonly name = 'docker';
  private readonly images: ImageBuilder;
  private readonly workspaces: HostWorkspaces;
  private readonly networks: ExecutionNetworks;
  /** Image details for a few seconds: a burst of jobs on one image asks the engine once. */
  private readonly imageInfo = new Map<string, { info: Docker.ImageInspectInfo; atMs: number }>();

  constructor(
    private readonly docker: Docker,
    private readonly opts: DockerProviderOptions,
  ) {
    this.images = new ImageBuilder(opts.imagesDir);
    this.workspaces = new HostWorkspaces(opts.workspacesDir);
    this.networks = new ExecutionNetworks(docker, new HostFirewall({ hostTcpPortsOpen: opts.hostTcpPortsOpen ?? [] }));
  }

  private container(executionId: string): Container {
    return this.docker.getContainer(`paddock-${executionId}`);
  }

  /** Runs an engine call, its failure classified (see `classified`). */
  private async engine<T>(executionId: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw classified(err, executionId);
    }
  }

  async create(request: CreateRequest, progress: (line: string) => void): Promise<CreatedInstance> {
    const { spec, image } = request;
    const executionId = request.labels.executionId;
    const lookedUpAtMs = Date.now();
    let built = false;
    const imageInfo = await this.inspectOrBuild(image, (line) => {
      built = true;
      progress(line);
    });
    const imageBuildMs = built ? Date.now() - lookedUpAtMs : 0;
    const imageIsOurs = Boolean(imageInfo.Config?.Labels?.['io.paddock.image']);
    const diskLimitBytes = Number(spec.diskBytes);
    let workspaceDir: string | undefined;
    if (this.opts.workspaceMode === 'bind') {
      workspaceDir = await this.workspaces.prepare(executionId, spec.files, diskLimitBytes);
    } else if (diskLimitBytes > 0) {
      throw new UnsupportedSpecError(
        'this broker cannot limit a workspace\'s disk: it keeps workspaces in the engine (PADDOCK_WORKSPACE_MODE=archive); run it as root on the engine\'s host with PADDOCK_WORKSPACE_MODE=bind, or ask for no disk limit',
      );
    }
    const archives = await workspaceArchives(spec, {
      imageIsOurs,
      workspaceOnHost: workspaceDir !== undefined,
      ...(request.sshPassword === undefined ? {} : { sshPassword: request.sshPassword }),
    });
    const options = containerSpec({
      executionId,
      ownerId: request.labels.ownerId,
      brokerId: request.labels.brokerId,
      spec,
      image,
      imageIsOurs,
      pidsLimit: request.pidsLimit,
      deadlineMs: request.labels.deadlineMs,
      hostReachable: (this.opts.hostTcpPortsOpen ?? []).length > 0,
      ...(workspaceDir === undefined ? {} : { workspaceDir }),
    });
    if (spec.network === NetworkMode.NETWORK_MODE_BRIDGE) await this.ensureNetwork(request.labels);
    const container = await this.engine(executionId, async () => {
      try {
        return await this.docker.createContainer(options);
      } catch (err) {
        if (statusOf(err) !== 409) throw err;
        // Left by an earlier attempt at this execution that died before it ran anything: replace it.
        await this.container(executionId).remove({ force: true, v: true });
        return this.docker.createContainer(options);
      }
    }).catch((err: unknown) => {
      throw this.runtimeMissing(err, dockerRuntimeOf(spec)) ?? err;
    });
    // One put per writable place: a read-only root takes no archive at `/`.
    for (const { path, tar } of archives) await this.engine(executionId, () => container.putArchive(tar, { path }));
    return { instanceId: container.id, imageBuildMs };
  }

  /** The execution's own network; a host whose firewall cannot be set up gets no bridged instance at all. */
  private async ensureNetwork(owner: InstanceLabels): Promise<void> {
    try {
      await this.engine(owner.executionId, () => this.networks.ensure(owner));
    } catch (err) {
      if (err instanceof HostFirewallError) throw new UnsupportedSpecError(err.message);
      throw err;
    }
  }

  /** The engine refuses a runtime it has not registered (400 "unknown or invalid runtime name"). */
  private runtimeMissing(err: unknown, runtime: string): UnsupportedSpecError | undefined {
    if (statusOf(err) !== 400 || !/runtime/i.test((err as Error).message)) return undefined;
    return new UnsupportedSpecError(
      runtime === 'runsc'
        ? 'gVisor was asked for, but this broker\'s Docker engine has no "runsc" runtime: install runsc and register it with dockerd (scripts/setup.sh does both), or ask for containerRuntime "runc"'
        : `this broker's Docker engine has no "${runtime}" runtime`,
    );
  }

  /** The image's details; one of Paddock's own that is missing is built first, its progress reported. */
  private async inspectOrBuild(image: string, progress: (line: string) => void): Promise<Docker.ImageInspectInfo> {
    const cached = this.imageInfo.get(image);
    if (cached && Date.now() - cached.atMs < IMAGE_INFO_TTL_MS) return cached.info;
    try {
      const info = await this.docker.getImage(image).inspect();
      this.imageInfo.set(image, { info, atMs: Date.now() });
      return info;
    } catch (err) {
      if (statusOf(err) !== 404) throw classified(err, '');
    }
    const recipe = this.images.recipeFor(image);
    if (recipe === undefined) throw new ImageUnavailableError(`image ${image} is not in the Docker engine: build it (paddock images build) or pull it first`, image);
    const startedAt = Date.now();
    progress(`image ${image} is not built yet: building it now (images/${recipe}/build.sh)`);
    try {
      await this.images.build(recipe, (line) => progress(`  ${line}`));
    } catch (err) {
      throw new ImageUnavailableError((err as Error).message, image, { cause: err });
    }
    progress(`built ${image} in ${Math.round((Date.now() - startedAt) / 1000)} s`);
    return this.engine('', () => this.docker.getImage(image).inspect());
  }

  async start(executionId: string): Promise<void> {
    try {
      await this.container(executionId).start();
    } catch (err) {
      // 304: started already (a retried start whose first answer was lost).
      if (statusOf(err) !== 304) throw classified(err, executionId);
    }
  }

  async attach(executionId: string, opts: { replay: boolean }): Promise<AsyncIterable<OutputFrame>> {
    const container = this.container(executionId);
    const stream = await this.engine(executionId, () =>
      opts.replay
        ? (container.logs({ follow: true, stdout: true, stderr: true }) as unknown as Promise<Readable>)
        : (container.attach({ stream: true, stdout: true, stderr: true }) as unknown as Promise<Readable>),
    );
    return demuxFrames(stream);
  }

  async wait(executionId: string): Promise<number> {
    const { StatusCode } = (await this.engine(executionId, () => this.container(executionId).wait())) as { StatusCode: number };
    return StatusCode;
  }

  async inspect(executionId: string): Promise<InstanceInfo> {
    const info = await this.engine(executionId, () => this.container(executionId).inspect());
    // Docker says 0001-01-01 for a container that never started.
    const startedAtMs = Date.parse(info.State.StartedAt);
    return {
      instanceId: info.Id,
      labels: labelsOf(info.Config.Labels),
      running: info.State.Running,
      startedAtMs: startedAtMs > 0 ? startedAtMs : 0,
      exitCode: info.State.Running ? null : info.State.ExitCode,
      oomKilled: info.State.OOMKilled,
      memoryLimitBytes: info.HostConfig.Memory ?? 0,
      diskLimitBytes: Number(info.Config.Labels?.[labels.diskBytes] ?? 0),
    };
  }

  async stop(executionId: string, graceMs: number): Promise<void> {
    try {
      await this.container(executionId).stop({ t: Math.ceil(graceMs / 1000) });
    } catch (err) {
      // 304: already stopped; 404: already gone. Both are the end wanted.
      if (statusOf(err) !== 304 && statusOf(err) !== 404) throw classified(err, executionId);
    }
  }

  async remove(executionId: string): Promise<void> {
    try {
      await this.container(executionId).remove({ force: true, v: true });
    } catch (err) {
      // 404: gone already; 409: its removal is under way.
      if (statusOf(err) !== 404 && statusOf(err) !== 409) throw classified(err, executionId);
    }
    // After the container: the engine keeps a network that still has one attached.
    await this.engine(executionId, () => this.networks.remove(executionId));
    await this.workspaces.remove(executionId);
  }

  workspaceFull(executionId: string): Promise<boolean> {
    return this.workspaces.isFull(executionId);
  }

  async workspace(executionId: string): Promise<WorkspaceContent> {
    const dir = this.workspaces.pathOf(executionId);
    if (this.opts.workspaceMode === 'bind' && existsSync(dir)) return { kind: 'directory', path: dir };
    const stream = await this.engine(executionId, () => this.container(executionId).getArchive({ path: WORKSPACE }));
    return { kind: 'tar', stream: stream as unknown as Readable };
  }

  async exec(executionId: string, request: ExecCommand): Promise<ExecProcess> {
    const container = this.container(executionId);
    const withStdin = request.stdin.length > 0;
    const exec = await this.engine(executionId, () =>
      container.exec({
        Cmd: [...request.cmd],
        User: JOB_USER,
        WorkingDir: WORKSPACE,
        Env: ['HOME=/home/agent'],
        AttachStdin: withStdin,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
      }),
    );
    const stream = (await this.engine(executionId, () => exec.start({ hijack: withStdin, stdin: withStdin }))) as Duplex;
    if (withStdin) stream.end(Buffer.from(request.stdin));
    let killed: Promise<void> | undefined;
    return {
      output: demuxFrames(stream),
      exitCode: async () => {
        // The stream can end a moment before Docker records the exit code.
        for (let i = 0; i < 50; i++) {
          const info = await this.engine(executionId, () => exec.inspect());
          if (!info.Running && info.ExitCode !== null) return info.ExitCode;
          await new Promise((r) => setTimeout(r, 20));
        }
        throw new Error('the command ended but Docker reports no exit code');
      },
      kill: () =>
        (killed ??= (async () => {
          const info = await exec.inspect().catch(() => null);
          if (info?.Running && info.Pid > 0) await killProcessTree(info.Pid, info.ContainerID);
          stream.destroy();
        })()),
    };
  }

  async stats(executionId: string): Promise<InstanceStats> {
    const s = (await this.engine(executionId, () => this.container(executionId).stats({ stream: false }))) as Docker.ContainerStats;
    return { cpuNanos: s.cpu_stats?.cpu_usage?.total_usage ?? 0, memoryBytes: s.memory_stats?.usage ?? 0 };
  }

  async list(selector: Partial<InstanceLabels>): Promise<InstanceSummary[]> {
    const filter: string[] = [];
    if (selector.brokerId !== undefined) filter.push(`${labels.brokerId}=${selector.brokerId}`);
    if (selector.executionId !== undefined) filter.push(`${labels.executionId}=${selector.executionId}`);
    if (selector.ownerId !== undefined) filter.push(`${labels.owner}=${selector.ownerId}`);
    if (selector.deadlineMs !== undefined) filter.push(`${labels.deadlineMs}=${selector.deadlineMs}`);
    const containers = await this.engine('', () => this.docker.listContainers({ all: true, filters: { label: filter } }));
    return containers
      .filter((c) => c.Labels[labels.executionId])
      .map((c) => ({
        instanceId: c.Id,
        labels: labelsOf(c.Labels),
        // paused and restarting containers still hold their job; removing and dead ones have ended.
        state: c.State === 'created' ? 'created' : c.State === 'running' || c.State === 'paused' || c.State === 'restarting' ? 'running' : 'exited',
      }));
  }

  /**
   * Inside the container's network namespace, as kubelet's dockershim did port-forward (see
   * relay/namespace.ts): works for any image, for a container with no network, and for a server bound to
   * 127.0.0.1; the host never dials the container's bridge address. Needs root on the engine's host. Under
   * gVisor it needs runsc's `--network=host` (scripts/setup.sh registers it so), which keeps the sandbox's
   * sockets in the container's namespace instead of gVisor's own network stack.
   */
  async reachPort(executionId: string, port: number): Promise<Duplex> {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UnsupportedSpecError(`port ${port} is not a TCP port`);
    return new NamespaceConnection(await this.runningPid(executionId), executionId, port);
  }

  async listenInside(executionId: string, port: number, socketPath: string): Promise<InsideListener> {
    return listenInNamespace(await this.runningPid(executionId), { name: `${socketPath} at port ${port}`, port, socketPath });
  }

  /** The host pid of the container's first process, whose network namespace is the container's. */
  private async runningPid(executionId: string): Promise<number> {
    const info = await this.engine(executionId, () => this.container(executionId).inspect());
    if (!info.State.Running || !info.State.Pid) throw new InstanceNotFoundError(executionId);
    return info.State.Pid;
  }

  async leftovers(brokerId: string): Promise<string[]> {
    const [workspaces, networks] = await Promise.all([this.workspaces.executions(), this.engine('', () => this.networks.executions(brokerId))]);
    return [...new Set([...workspaces, ...networks])];
  }
}
