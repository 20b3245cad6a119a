import { readdir, readFile } from 'node:fs/promises';

/** The parent of each process of this host, from /proc/<pid>/stat. */
async function parents(): Promise<Map<number, number>> {
  const map = new Map<number, number>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => null);
    if (stat === null) continue;
    // The command name (field 2) may hold spaces and parentheses: the fields after it follow the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    map.set(Number(name), ppid);
  }
  return map;
}

function descendantsOf(root: number, parentOf: Map<number, number>): number[] {
  const found = [root];
  for (let i = 0; i < found.length; i++) {
    for (const [pid, ppid] of parentOf) if (ppid === found[i] && !found.includes(pid)) found.push(pid);
  }
  return found;
}

/** True when the host process `pid` runs inside the container `containerId` (its cgroup names it). */
export async function runsInContainer(pid: number, containerId: string): Promise<boolean> {
  const cgroup = await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '');
  return cgroup.includes(containerId);
}

function signal(pids: readonly number[], sig: NodeJS.Signals): void {
  for (const p of pids) {
    try {
      process.kill(p, sig);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }
}

/**
 * SIGKILLs a process of this host and every process it started, as root. Docker has no call that ends an
 * exec'd command, so the broker (on the engine's host) does it by the command's host pid. The tree is
 * frozen (SIGSTOP) until a second read finds no new process, so that nothing forks away meanwhile.
 */
export async function killProcessTree(pid: number, containerId: string): Promise<void> {
  if (!(await runsInContainer(pid, containerId))) return;
  let tree = descendantsOf(pid, await parents());
  for (let round = 0; round < 5; round++) {
    signal(tree, 'SIGSTOP');
    const again = descendantsOf(pid, await parents());
    const grew = again.some((p) => !tree.includes(p));
    tree = [...new Set([...tree, ...again])];
    if (!grew) break;
  }
  signal(tree, 'SIGKILL');
}
