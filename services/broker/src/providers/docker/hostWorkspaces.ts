import { execFile } from 'node:child_process';
import { chown, mkdir, open, readdir, readFile, realpath, rm, rmdir, statfs, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { UnsupportedSpecError, WorkspaceFullError } from '../../provider/errors.js';

const run = promisify(execFile);
const UID = 1000;
const GID = 1000;
const DISK_IMAGE_SUFFIX = '.ext4';
/**
 * Room left below which a limited workspace counts as full. ext4 refuses a write when it cannot allocate
 * the next block, leaving a few blocks' worth of slack a job cannot use.
 */
const FULL_SLACK_BYTES = 256 * 1024;

/**
 * Workspaces as folders on the broker's host, bind-mounted at /workspace: the request's files are written
 * straight into them, and the ZIP is made from the folder at the end, so neither costs the Docker engine
 * an archive call (its largest per-job cost under load). Owned by the job's user (uid 1000).
 *
 * A workspace with a disk limit is its own ext4 filesystem: a sparse image file of that size, loop-mounted
 * at the folder. The kernel enforces the limit (the job's writes fail with ENOSPC), which no polling could
 * do between two looks; the loop device is released when the folder is unmounted.
 */
export class HostWorkspaces {
  constructor(readonly root: string) {}

  pathOf(executionId: string): string {
    if (!/^[A-Za-z0-9_-]+$/.test(executionId)) throw new UnsupportedSpecError(`execution id ${executionId} cannot name a folder`);
    return join(this.root, executionId);
  }

  private imageOf(executionId: string): string {
    return `${this.pathOf(executionId)}${DISK_IMAGE_SUFFIX}`;
  }

  /**
   * A fresh folder holding the request's files, limited to `diskLimitBytes` (0: no limit); a folder left
   * by an earlier attempt is replaced.
   */
  async prepare(executionId: string, files: Record<string, Uint8Array>, diskLimitBytes: number): Promise<string> {
    const dir = this.pathOf(executionId);
    await this.remove(executionId);
    await mkdir(this.root, { recursive: true, mode: 0o711 });
    await mkdir(dir, { mode: 0o755 });
    if (diskLimitBytes > 0) await this.mountDiskImage(executionId, diskLimitBytes);
    await chown(dir, UID, GID);
    try {
      await this.writeFiles(dir, files);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC') throw new WorkspaceFullError(diskLimitBytes, { cause: err });
      throw err;
    }
    return dir;
  }

  private async mountDiskImage(executionId: string, sizeBytes: number): Promise<void> {
    const image = this.imageOf(executionId);
    const handle = await open(image, 'wx', 0o600);
    try {
      await handle.truncate(sizeBytes);
    } finally {
      await handle.close();
    }
    // No journal (the workspace does not outlive its job) and no blocks reserved for root: all of the
    // limit is the job's to use.
    await run('mkfs.ext4', ['-q', '-F', '-m', '0', '-O', '^has_journal', '-E', `root_owner=${UID}:${GID}`, image]);
    await run('mount', ['-o', 'loop,nosuid,nodev', image, this.pathOf(executionId)]);
    await rmdir(join(this.pathOf(executionId), 'lost+found')).catch(() => {});
  }

  private async writeFiles(dir: string, files: Record<string, Uint8Array>): Promise<void> {
    for (const [path, content] of Object.entries(files).sort(([a], [b]) => a.localeCompare(b))) {
      const parts = path.split('/');
      // The gateway rejects these already; a path must never leave the workspace whoever sent it.
      if (path.startsWith('/') || parts.some((p) => p === '..' || p === '.' || p === '')) {
        throw new UnsupportedSpecError(`file path "${path}" must be relative and stay inside the workspace`);
      }
      for (let i = 1; i < parts.length; i++) {
        const sub = join(dir, ...parts.slice(0, i));
        await mkdir(sub, { recursive: true, mode: 0o755 });
        await chown(sub, UID, GID);
      }
      const file = join(dir, path);
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, content, { mode: 0o644, flag: 'wx' });
      await chown(file, UID, GID);
    }
  }

  /** True when a workspace with a disk limit has no room left for the job. */
  async isFull(executionId: string): Promise<boolean> {
    if (!(await this.isMounted(executionId))) return false;
    const fs = await statfs(this.pathOf(executionId));
    return fs.bavail * fs.bsize < FULL_SLACK_BYTES;
  }

  /** Unmounts (which frees its loop device) and deletes the folder and its disk image; nothing there is fine. */
  async remove(executionId: string): Promise<void> {
    const dir = this.pathOf(executionId);
    if (await this.isMounted(executionId)) {
      // A process that still holds the folder (an engine slow to let go) must not keep the mount alive:
      // a lazy unmount detaches it now and frees the loop device once the last user lets go.
      await run('umount', [dir]).catch(() => run('umount', ['-l', dir]));
    }
    await rm(dir, { recursive: true, force: true });
    await rm(this.imageOf(executionId), { force: true });
  }

  /** The executions that have a workspace (a folder or a disk image) here. */
  async executions(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const ids = names.map((n) => (n.endsWith(DISK_IMAGE_SUFFIX) ? n.slice(0, -DISK_IMAGE_SUFFIX.length) : n));
    return [...new Set(ids)].filter((id) => /^[A-Za-z0-9_-]+$/.test(id));
  }

  private async isMounted(executionId: string): Promise<boolean> {
    // The kernel lists a mount point by its real path.
    const dir = await realpath(this.pathOf(executionId)).catch(() => null);
    if (dir === null) return false;
    // Field 5 of each line is the mount point, with spaces and the like escaped as octal.
    const table = await readFile('/proc/self/mountinfo', 'utf8');
    return table.split('\n').some((line) => line.split(' ')[4]?.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))) === dir);
  }
}
