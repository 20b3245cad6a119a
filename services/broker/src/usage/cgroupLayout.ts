import { readFileSync } from 'node:fs';
import { join, posix } from 'node:path';

/**
 * Where this host's cgroup hierarchies are mounted, as the kernel lists them in /proc/self/mountinfo:
 * - cgroup v1 (Docker's "cgroup version 1", with or without the empty v2 hierarchy of hybrid hosts): CPU
 *   time from the `cpuacct` hierarchy, memory from `memory`;
 * - cgroup v2 only: both from the one unified hierarchy.
 * `all` is every cgroup mount: the runtime makes an execution's cgroup in each, and it is removed from each.
 */
export type CgroupLayout =
  | { readonly version: 1; readonly cpuacct: CgroupMount; readonly memory: CgroupMount; readonly all: readonly CgroupMount[] }
  | { readonly version: 2; readonly unified: CgroupMount; readonly all: readonly CgroupMount[] };

export interface CgroupMount {
  /** Where it is mounted here. */
  readonly mountPoint: string;
  /** The cgroup of the hierarchy the mount shows (`/` on the host; deeper inside a cgroup namespace). */
  readonly root: string;
}

/** This host's hierarchies; null where none holds what metering needs (not Linux, or no cpuacct and memory). */
export function cgroupLayout(mountinfoPath = '/proc/self/mountinfo'): CgroupLayout | null {
  let mountinfo: string;
  try {
    mountinfo = readFileSync(mountinfoPath, 'utf8');
  } catch {
    return null;
  }
  return layoutOf(mountinfo);
}

/** The folder of `cgroupPath` (a path in the hierarchy) under a mount, or null when the mount does not show it. */
export function folderOf(mount: CgroupMount, cgroupPath: string): string | null {
  const rel = posix.relative(mount.root, cgroupPath);
  if (rel.startsWith('..') || posix.isAbsolute(rel)) return null;
  return join(mount.mountPoint, rel);
}

/**
 * The layout in a mountinfo text: each line is `id parent major:minor root mount-point options [optional
 * fields] - fstype source super-options`; a v1 hierarchy names its controllers in its super-options.
 */
export function layoutOf(mountinfo: string): CgroupLayout | null {
  const v1 = new Map<string, CgroupMount>();
  const all: CgroupMount[] = [];
  let unified: CgroupMount | null = null;
  for (const line of mountinfo.split('\n')) {
    const [before, after] = line.split(' - ');
    if (before === undefined || after === undefined) continue;
    const fields = before.split(' ');
    const [fstype, , superOptions = ''] = after.split(' ');
    const root = fields[3];
    const mountPoint = fields[4];
    if (root === undefined || mountPoint === undefined) continue;
    const mount = { mountPoint: unescapeMountinfo(mountPoint), root: unescapeMountinfo(root) };
    if (fstype === 'cgroup2') {
      unified ??= mount;
      all.push(mount);
    } else if (fstype === 'cgroup') {
      all.push(mount);
      for (const option of superOptions.split(',')) if (!v1.has(option)) v1.set(option, mount);
    }
  }
  const cpuacct = v1.get('cpuacct');
  const memory = v1.get('memory');
  if (cpuacct && memory) return { version: 1, cpuacct, memory, all };
  // A hybrid host's unified hierarchy holds no controllers: it is the source only when v1 has none of them.
  if (unified && !cpuacct && !memory) return { version: 2, unified, all };
  return null;
}

/** mountinfo writes space, tab, newline and backslash in paths as octal escapes. */
function unescapeMountinfo(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}
