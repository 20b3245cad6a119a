import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MachineInfo } from '../machine.js';
import { CATEGORIES, type Category, type Problem } from './checks.js';
import type { JobKind } from './jobs.js';
import type { Kill } from './killer.js';
import type { ChaosOptions } from './options.js';
import { PARTS, type Part } from './parts.js';

/** An accepted execution that did not end as it should. */
export interface BadExecution {
  readonly id: string;
  readonly kind: JobKind;
  readonly nonce: string;
  /** When its POST was answered 201 (null for a phantom), ISO 8601. */
  readonly acceptedAt: string | null;
  readonly problems: readonly Problem[];
  /** Lines of PADDOCK_HOME/logs that name it, a few per service. */
  readonly logs: readonly string[];
}

export interface PartKills {
  readonly kills: number;
  readonly notBack: number;
  readonly slowestBackMs: number | null;
}

/** What chaos.json holds. */
export interface ChaosReport {
  readonly machine: MachineInfo;
  readonly settings: ChaosOptions;
  readonly durationS: number;
  readonly kills: {
    readonly total: number;
    /** Per part: its kills, how many of them it did not come back from, and its slowest return in ms (null: none). */
    readonly byPart: Readonly<Record<Part, PartKills>>;
    readonly list: readonly Kill[];
  };
  /** Parts that were not running again within `backWithinMs` after a kill, or when their turn came. */
  readonly notBack: readonly { readonly part: Part; readonly atMs: number; readonly what: string }[];
  readonly executions: {
    /** POSTs answered 201: every one of them is checked. */
    readonly accepted: number;
    readonly byKind: Readonly<Record<JobKind, number>>;
    /** Submissions the client gave up on (no 201 before the deadline): Paddock was not back. */
    readonly unaccepted: readonly { readonly kind: JobKind; readonly nonce: string; readonly why: string }[];
    /** POST attempts that failed after the request may have left (reset, timeout, 5xx) and were retried. */
    readonly ambiguousRetries: number;
    /**
     * Executions the gateway stored for a POST whose answer the client never got, found by their job's
     * nonce: the API has no idempotency key, so these are the client's problem, not duplicates. Each was
     * cancelled if still running, and had to end and leave no container like any other.
     */
    readonly phantoms: number;
  };
  readonly counts: Readonly<Record<Category, number>>;
  readonly bad: readonly BadExecution[];
  /** What kept the run from checking everything (the bus unreadable, kills not made). */
  readonly runProblems: readonly string[];
  /** Where the whole PADDOCK_HOME/logs of the run were kept, when anything went wrong. */
  readonly logsKeptIn: string | null;
  readonly passed: boolean;
}

export function countsOf(bad: readonly BadExecution[]): Record<Category, number> {
  const counts = Object.fromEntries(CATEGORIES.map((c) => [c, 0])) as Record<Category, number>;
  for (const b of bad) for (const c of new Set(b.problems.map((p) => p.category))) counts[c]++;
  return counts;
}

export function perPart<T>(f: (part: Part) => T): Record<Part, T> {
  return Object.fromEntries(PARTS.map((p) => [p, f(p)])) as Record<Part, T>;
}

export function renderChaosMarkdown(r: ChaosReport): string {
  const m = r.machine;
  const s = r.settings;
  const lines = [
    '# Paddock chaos run',
    '',
    `Run ${m.date} on ${m.cpus} × ${m.cpuModel}, ${m.memoryGb} GB RAM, Linux ${m.kernel}, Node ${m.node}, Docker engine ${m.docker}; ${r.durationS} s.`,
    `${s.executions} executions, ${s.kills} kills (one every ${s.killEveryMs} ms), ${s.lines} lines per job, ${s.inputFileBytes / 1024} KiB Python inputs, seed ${s.seed}.`,
    '',
    `**${r.passed ? 'Passed' : 'Failed'}**: ${CATEGORIES.map((c) => `${c} ${r.counts[c]}`).join(', ')}; parts not back ${r.notBack.length}; unaccepted ${r.executions.unaccepted.length}.`,
    '',
    '| | count |',
    '| --- | ---: |',
    `| kills | ${r.kills.total} |`,
    ...Object.entries(r.kills.byPart).map(([part, k]) => `| kills of ${part} (slowest back: ${k.slowestBackMs === null ? '-' : `${k.slowestBackMs} ms`}${k.notBack > 0 ? `, ${k.notBack} not back` : ''}) | ${k.kills} |`),
    `| executions accepted | ${r.executions.accepted} |`,
    ...Object.entries(r.executions.byKind).map(([kind, n]) => `| ${kind} | ${n} |`),
    ...CATEGORIES.map((c) => `| ${c} | ${r.counts[c]} |`),
    `| parts not back | ${r.notBack.length} |`,
    `| submissions not accepted | ${r.executions.unaccepted.length} |`,
    `| ambiguous POST retries | ${r.executions.ambiguousRetries} |`,
    `| phantom executions (client's problem) | ${r.executions.phantoms} |`,
  ];
  lines.push(
    '',
    '## Kills',
    '',
    ...r.kills.list.map((k) => `- ${k.at} ${k.part} (pid ${k.pid}): ${k.backAfterMs === null ? 'not back' : `back after ${k.backAfterMs} ms`}`),
  );
  if (r.runProblems.length > 0) {
    lines.push('', '## Problems of the run', '', ...r.runProblems.map((p) => `- ${p}`));
  }
  if (r.notBack.length > 0) {
    lines.push('', '## Parts not back', '', ...r.notBack.map((n) => `- ${n.part} at ${(n.atMs / 1000).toFixed(1)} s: ${n.what}`));
  }
  if (r.executions.unaccepted.length > 0) {
    lines.push('', '## Submissions never accepted', '', ...r.executions.unaccepted.map((u) => `- ${u.kind} ${u.nonce}: ${u.why}`));
  }
  if (r.bad.length > 0) {
    lines.push('', `## Bad executions (${r.bad.length})`);
    for (const b of r.bad) {
      lines.push('', `### ${b.id} (${b.kind}, nonce ${b.nonce}${b.acceptedAt ? `, accepted ${b.acceptedAt}` : ', a phantom'})`, '', ...b.problems.map((p) => `- **${p.category}**: ${p.why}`));
      if (b.logs.length > 0) lines.push('', '```', ...b.logs, '```');
    }
  }
  if (r.logsKeptIn !== null) lines.push('', `The run's logs were kept in ${r.logsKeptIn}.`);
  lines.push('', 'See bench/README.md (chaos) for what each check means.');
  return `${lines.join('\n')}\n`;
}

const REPO = fileURLToPath(new URL('../../../../', import.meta.url));

/**
 * The results are meant to be shared: paths of the machine that ran them (the checkout in stack traces,
 * the temporary folders of the run) are written relative to `<repo>/` and `$TMPDIR/`.
 */
export function withoutLocalPaths(text: string): string {
  const tmp = tmpdir().replace(/\/?$/, '/');
  return text.split(REPO).join('<repo>/').split(tmp).join('$TMPDIR/');
}

export async function writeChaosReport(dir: string, report: ChaosReport): Promise<{ json: string; markdown: string }> {
  await mkdir(dir, { recursive: true });
  const json = join(dir, 'chaos.json');
  const markdown = join(dir, 'chaos.md');
  await writeFile(json, withoutLocalPaths(`${JSON.stringify(report, null, 2)}\n`));
  await writeFile(markdown, withoutLocalPaths(renderChaosMarkdown(report)));
  return { json, markdown };
}
