import type Docker from 'dockerode';
import type { Logger } from '@paddock/telemetry';

/** The labels portdetect reads; the broker puts them on every container it creates. */
export const LABELS = {
  executionId: 'io.paddock.execution-id',
  brokerId: 'io.paddock.broker-id',
} as const;

/** A running instance on this engine, and the process whose namespace holds its sockets. */
export interface RunningInstance {
  readonly id: string;
  readonly brokerId: string;
  readonly containerId: string;
  readonly pid: number;
}

export interface InstanceHandlers {
  up(instance: RunningInstance): void;
  down(id: string): void;
}

const RESYNC_AFTER_MS = 1_000;

/**
 * Follows the Paddock instances running on one Docker engine: the ones running at start, then `start`
 * and `die` from the engine's event stream. When the stream breaks (the engine restarted), it lists the
 * running instances again and reports the difference, so nothing that started or ended meanwhile is missed.
 */
export class DockerInstances {
  readonly #running = new Map<string, RunningInstance>();
  #stream: NodeJS.ReadableStream | undefined;
  #stopped = false;

  constructor(
    private readonly docker: Docker,
    private readonly handlers: InstanceHandlers,
    private readonly log: Logger,
  ) {}

  /** Resolves once the instances running now have been reported. */
  start(): Promise<void> {
    return this.#follow();
  }

  stop(): void {
    this.#stopped = true;
    (this.#stream as (NodeJS.ReadableStream & { destroy?: () => void }) | undefined)?.destroy?.();
  }

  async #follow(): Promise<void> {
    let first = true;
    let resolveFirst!: () => void;
    let rejectFirst!: (err: unknown) => void;
    const firstSync = new Promise<void>((resolve, reject) => ([resolveFirst, rejectFirst] = [resolve, reject]));
    const loop = async () => {
      while (!this.#stopped) {
        try {
          // Events first, then the list: a container that starts in between is seen by one or the other.
          const stream = await this.docker.getEvents({
            filters: { type: ['container'], event: ['start', 'die'], label: [LABELS.executionId] },
          });
          this.#stream = stream;
          const ended = new Promise<void>((resolve) => {
            stream.once('end', resolve);
            stream.once('close', resolve);
            stream.once('error', resolve);
          });
          const pending: Buffer[] = [];
          stream.on('data', (chunk: Buffer) => {
            pending.push(chunk);
            const text = Buffer.concat(pending.splice(0)).toString('utf8');
            const lines = text.split('\n');
            const rest = lines.pop() ?? '';
            if (rest !== '') pending.push(Buffer.from(rest));
            for (const line of lines) if (line.trim() !== '') void this.#onEvent(line);
          });
          await this.#resync();
          if (first) {
            first = false;
            resolveFirst();
          }
          await ended;
          if (!this.#stopped) this.log.warn('the Docker event stream ended; listing the instances again');
        } catch (err) {
          if (first) {
            first = false;
            rejectFirst(err);
            return;
          }
          this.log.warn({ err }, 'Docker is not answering; trying again');
        }
        if (!this.#stopped) await new Promise((r) => setTimeout(r, RESYNC_AFTER_MS));
      }
    };
    void loop();
    return firstSync;
  }

  async #resync(): Promise<void> {
    const listed = await this.docker.listContainers({ filters: { label: [LABELS.executionId], status: ['running'] } });
    const seen = new Set<string>();
    for (const c of listed) {
      const id = c.Labels[LABELS.executionId];
      if (!id) continue;
      seen.add(id);
      if (!this.#running.has(id)) await this.#inspectAndReport(c.Id);
    }
    for (const id of [...this.#running.keys()]) {
      if (!seen.has(id)) this.#down(id);
    }
  }

  async #onEvent(line: string): Promise<void> {
    let event: { status?: string; Action?: string; id?: string; Actor?: { ID?: string; Attributes?: Record<string, string> } };
    try {
      event = JSON.parse(line) as typeof event;
    } catch {
      return;
    }
    const action = event.Action ?? event.status;
    const containerId = event.Actor?.ID ?? event.id ?? '';
    const id = event.Actor?.Attributes?.[LABELS.executionId];
    if (!id || containerId === '') return;
    if (action === 'start') await this.#inspectAndReport(containerId);
    else if (action === 'die') {
      const known = this.#running.get(id);
      if (known?.containerId === containerId) this.#down(id);
    }
  }

  async #inspectAndReport(containerId: string): Promise<void> {
    try {
      const info = await this.docker.getContainer(containerId).inspect();
      const id = info.Config.Labels?.[LABELS.executionId];
      const pid = info.State.Pid;
      if (!id || !info.State.Running || !pid) return;
      const known = this.#running.get(id);
      if (known?.containerId === containerId && known.pid === pid) return;
      if (known) this.#down(id);
      const instance: RunningInstance = { id, brokerId: info.Config.Labels?.[LABELS.brokerId] ?? '', containerId, pid };
      this.#running.set(id, instance);
      this.handlers.up(instance);
    } catch (err) {
      // Gone before it could be inspected: its `die` follows, or it never was running.
      if ((err as { statusCode?: number }).statusCode !== 404) this.log.warn({ err, containerId }, 'could not inspect a container');
    }
  }

  #down(id: string): void {
    if (!this.#running.delete(id)) return;
    this.handlers.down(id);
  }
}
