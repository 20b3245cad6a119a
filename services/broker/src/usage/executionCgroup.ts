import { readFileSync } from 'node:fs';
import { rmdir } from 'node:fs/promises';
import { folderOf, type CgroupLayout } from './cgroupLayout.js';

/** Where a broker's execution cgroups are: one folder per broker, so that each sweeps only its own. */
export function brokerCgroups(brokerId: string): string {
  return `/paddock/${brokerId}`;
}

/**
 * The cgroup an execution's container is placed under (Docker's `CgroupParent`, cgroupfs driver): the
 * runtime makes the container's own cgroup inside it and removes that one when the container stops, but
 * this parent stays, and the kernel keeps in it the CPU time of everything that ever ran below. Hence the
 * final figures can be read after the container stopped. Under gVisor the sandbox (Sentry, gofer) runs in
 * the container's cgroup on the host, so what it costs the host is counted there too.
 */
export function executionCgroupParent(brokerId: string, executionId: string): string {
  return `${brokerCgroups(brokerId)}/${executionId}`;
}

/** One look at an execution's cgroup. */
export interface CgroupReading {
  /** CPU time every process of the execution ever used (the kernel's count: ended processes included). */
  readonly cpuNanos: number;
  /**
   * Memory in use now, as the working set `docker stats` and the kubelet report: usage less the file cache
   * the kernel may drop first (inactive file pages).
   */
  readonly memoryBytes: number;
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}

/** The value of `key` in a flat-keyed cgroup file (`key value` per line), 0 when absent. */
function statValue(text: string, key: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${key} `));
  return line === undefined ? 0 : Number(line.slice(key.length + 1));
}

/**
 * An execution's cgroup on this host: three small files read per look, no call to the engine. Read
 * synchronously: cgroup files are made by the kernel on the spot (nothing waits on a disk), and a
 * synchronous read costs a few system calls where fs.promises costs four thread-pool round trips per file.
 * Measured on the 2-core host with 50 instances looked at every second: 4 ms of CPU per second (a pass over
 * all 50 in about 5 ms) against 24-39 ms with fs.promises.
 */
export class ExecutionCgroup {
  private readonly files: { readonly cpu: string; readonly memory: string; readonly memoryStat: string };

  constructor(
    private readonly layout: CgroupLayout,
    /** Its path in the hierarchies, `/paddock/<broker id>/<execution id>`. */
    readonly path: string,
  ) {
    const cpuMount = layout.version === 1 ? layout.cpuacct : layout.unified;
    const memoryMount = layout.version === 1 ? layout.memory : layout.unified;
    // A mount that does not show the path (a cgroup namespace rooted elsewhere) reads as missing.
    const cpuDir = folderOf(cpuMount, path) ?? '/nonexistent';
    const memoryDir = folderOf(memoryMount, path) ?? '/nonexistent';
    this.files =
      layout.version === 1
        ? { cpu: `${cpuDir}/cpuacct.usage`, memory: `${memoryDir}/memory.usage_in_bytes`, memoryStat: `${memoryDir}/memory.stat` }
        : { cpu: `${cpuDir}/cpu.stat`, memory: `${memoryDir}/memory.current`, memoryStat: `${memoryDir}/memory.stat` };
  }

  /** Its figures now; null when it does not exist (the instance runs elsewhere, or it was removed). */
  read(): CgroupReading | null {
    let cpu: string;
    let memory: string;
    let memoryStat: string;
    try {
      cpu = readFileSync(this.files.cpu, 'utf8');
      memory = readFileSync(this.files.memory, 'utf8');
      memoryStat = readFileSync(this.files.memoryStat, 'utf8');
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
    const usage = Number(memory.trim());
    // v1 at a parent cgroup: the `total_` figures are those of its whole subtree.
    const inactiveFile = statValue(memoryStat, this.layout.version === 1 ? 'total_inactive_file' : 'inactive_file');
    return {
      cpuNanos: this.layout.version === 1 ? Number(cpu.trim()) : statValue(cpu, 'usage_usec') * 1_000,
      memoryBytes: Math.max(0, usage - inactiveFile),
    };
  }

  /**
   * Removes it from every hierarchy (the runtime made it in each). Resolves with the folders it could not
   * remove: one still holding a process or a cgroup (the kernel answers EBUSY) is left as it is.
   */
  async remove(): Promise<string[]> {
    const left: string[] = [];
    for (const mount of this.layout.all) {
      const dir = folderOf(mount, this.path);
      if (dir === null) continue;
      try {
        await rmdir(dir);
      } catch (err) {
        if (!isMissing(err)) left.push(`${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
    }
    return left;
  }
}
