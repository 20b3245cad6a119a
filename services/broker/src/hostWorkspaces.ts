import { chown, mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

const UID = 1000;
const GID = 1000;

/**
 * Workspaces as folders on the broker's host, bind-mounted at /workspace: the request's files are written
 * straight into them, and the ZIP is made from the folder at the end, so neither costs the Docker engine
 * an archive call (its largest per-job cost under load). Owned by the job's user (uid 1000).
 */
export class HostWorkspaces {
  constructor(readonly root: string) {}

  pathOf(executionId: string): string {
    if (!/^[A-Za-z0-9_-]+$/.test(executionId)) throw new Error(`execution id ${executionId} cannot name a folder`);
    return join(this.root, executionId);
  }

  /** A fresh folder holding the request's files; a folder left by an earlier attempt is replaced. */
  async prepare(executionId: string, files: Record<string, Uint8Array>): Promise<string> {
    const dir = this.pathOf(executionId);
    await rm(dir, { recursive: true, force: true });
    await mkdir(this.root, { recursive: true, mode: 0o711 });
    await mkdir(dir, { mode: 0o755 });
    await chown(dir, UID, GID);
    for (const [path, content] of Object.entries(files).sort(([a], [b]) => a.localeCompare(b))) {
      const parts = path.split('/');
      // The gateway rejects these already; a path must never leave the workspace whoever sent it.
      if (path.startsWith('/') || parts.some((p) => p === '..' || p === '.' || p === '')) {
        throw new Error(`file path "${path}" must be relative and stay inside the workspace`);
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
    return dir;
  }

  async remove(executionId: string): Promise<void> {
    await rm(this.pathOf(executionId), { recursive: true, force: true });
  }
}
