import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlobStore } from '@paddock/blobs';
import type { Logger } from '@paddock/telemetry';
import type { InstanceStore } from './instanceStore.js';

const HOUR_MS = 60 * 60 * 1000;

export interface RetentionOptions {
  readonly brokerId: string;
  readonly artifactsDir: string;
  /** What is older than this goes. */
  readonly retentionMs: number;
  /** Between two sweeps. */
  readonly intervalMs?: number;
}

export interface Swept {
  readonly artifacts: number;
  readonly rows: number;
  readonly blobs: number;
}

/**
 * Keeps disk and table from growing without bound: artifacts ZIPs, this broker's rows of ended executions
 * and blobs no request used for the retention time are deleted, once at start and then every hour.
 */
export class RetentionCleaner {
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<Swept> | null = null;

  constructor(
    private readonly store: InstanceStore,
    private readonly blobs: BlobStore,
    private readonly opts: RetentionOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    const run = () => void this.sweep().catch((err: unknown) => this.log.warn({ err }, 'retention sweep failed; the next one retries'));
    run();
    this.timer = setInterval(run, this.opts.intervalMs ?? HOUR_MS);
    this.timer.unref();
  }

  /** One sweep (joins the one under way). */
  sweep(nowMs = Date.now()): Promise<Swept> {
    this.sweeping ??= this.sweepOnce(nowMs).finally(() => (this.sweeping = null));
    return this.sweeping;
  }

  private async sweepOnce(nowMs: number): Promise<Swept> {
    const before = nowMs - this.opts.retentionMs;
    const artifacts = await this.sweepArtifacts(before);
    const rows = await this.store.removeEndedBefore(this.opts.brokerId, before);
    const blobs = await this.blobs.sweep(this.opts.retentionMs, nowMs);
    if (artifacts + rows + blobs > 0) this.log.info({ artifacts, rows, blobs, retentionDays: this.opts.retentionMs / (24 * HOUR_MS) }, 'retention: removed what outlived its retention');
    return { artifacts, rows, blobs };
  }

  /** ZIPs (and temporary files a crash left beside them) last written before `beforeMs`. */
  private async sweepArtifacts(beforeMs: number): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.opts.artifactsDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    let removed = 0;
    for (const name of names) {
      if (!name.endsWith('.zip') && !name.endsWith('.tmp')) continue;
      const path = join(this.opts.artifactsDir, name);
      const s = await stat(path).catch(() => null);
      if (s?.isFile() && s.mtimeMs < beforeMs) {
        await rm(path, { force: true });
        removed++;
      }
    }
    return removed;
  }

  stop(): Promise<unknown> {
    if (this.timer) clearInterval(this.timer);
    return this.sweeping?.catch(() => {}) ?? Promise.resolve();
  }
}
