import { readdirSync, readFileSync } from 'node:fs';

/** The parts of a Paddock that `paddock up` runs and the chaos run kills. */
export type Part = 'gateway' | 'scheduler' | 'broker' | 'nats-server' | 'postgres';

export const PARTS: readonly Part[] = ['gateway', 'scheduler', 'broker', 'nats-server', 'postgres'];

interface Proc {
  readonly pid: number;
  readonly ppid: number;
  /** The kernel's name of the executable (15 characters at most). */
  readonly comm: string;
  /** argv[0] as the process shows it: a Node service sets its title here. */
  readonly title: string;
  readonly args: readonly string[];
}

function readProc(pid: number): Proc | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The name is in parentheses and may itself hold spaces or parentheses: the fields follow the last ')'.
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const [state, ppid] = stat.slice(close + 2).split(' ');
    // A killed process its parent has not reaped yet still has an entry: it is not running.
    if (state === 'Z' || state === 'X') return null;
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
    return { pid, ppid: Number(ppid), comm, title: args[0] ?? '', args };
  } catch {
    // It ended while the table was being read.
    return null;
  }
}

function processTable(): Proc[] {
  return readdirSync('/proc')
    .filter((name) => /^[0-9]+$/.test(name))
    .map((name) => readProc(Number(name)))
    .filter((p): p is Proc => p !== null);
}

/** The processes below `rootPid` (its children, theirs, and so on). */
function descendants(table: readonly Proc[], rootPid: number): Proc[] {
  const children = new Map<number, Proc[]>();
  for (const p of table) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const out: Proc[] = [];
  const queue = [rootPid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      out.push(child);
      queue.push(child.pid);
    }
  }
  return out;
}

/**
 * The `paddock up` that this process started: a child running the CLI's main.js with the argument `up`.
 * Only its descendants are ever killed, so other Paddocks on the machine are never touched.
 */
export function findUpProcess(parentPid: number): number | undefined {
  const table = processTable();
  return table.find((p) => p.ppid === parentPid && p.args.some((a) => a.endsWith('/cli/dist/src/main.js')) && p.args.at(-1) === 'up')?.pid;
}

/**
 * The pid of each part running now under `upPid`: the services by their process titles, nats-server by its
 * executable, PostgreSQL by its postmaster (the `postgres` process whose parent is not one, so that killing
 * it takes the whole server down as a crash would, not just one backend).
 */
export function partsUnder(upPid: number): Map<Part, number> {
  const table = processTable();
  const byPid = new Map(table.map((p) => [p.pid, p]));
  const found = new Map<Part, number>();
  for (const p of descendants(table, upPid)) {
    const part = partOf(p, byPid);
    if (part !== null && !found.has(part)) found.set(part, p.pid);
  }
  return found;
}

function partOf(p: Proc, byPid: ReadonlyMap<number, Proc>): Part | null {
  for (const service of ['gateway', 'scheduler', 'broker'] as const) {
    if (p.title === `paddock-${service}`) return service;
  }
  if (p.comm === 'nats-server') return 'nats-server';
  if (p.comm === 'postgres' && byPid.get(p.ppid)?.comm !== 'postgres') return 'postgres';
  return null;
}
