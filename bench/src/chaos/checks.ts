import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Answer, ExecutionView } from './client.js';
import { END, sha256, START, type Job, type JobKind } from './jobs.js';
import type { StateEvent } from './stateHistory.js';

/**
 * What can be wrong with an accepted execution:
 * - `lost`: it never reached a final state (or the API forgot it);
 * - `duplicated`: it ran twice, or its final state was published more than once;
 * - `wrong`: a final state, exit code, reason, output or workspace other than the job's;
 * - `orphaned`: a container of it is left after it ended.
 */
export type Category = 'lost' | 'duplicated' | 'wrong' | 'orphaned';

export const CATEGORIES: readonly Category[] = ['lost', 'duplicated', 'wrong', 'orphaned'];

export interface Problem {
  readonly category: Category;
  readonly why: string;
}

const FINAL = ['completed', 'failed', 'cancelled'];

/** How much of its output a job of each kind must show at its end. */
type OutputShape = 'complete' | 'allLinesNoEnd' | 'startedPrefix' | 'anyPrefix';

const SHAPES: Readonly<Record<JobKind, OutputShape>> = {
  shell: 'complete',
  python: 'complete',
  exit: 'complete',
  service: 'complete',
  timeout: 'allLinesNoEnd',
  cancelRunning: 'startedPrefix',
  cancelQueued: 'anyPrefix',
};

/** The job's own lines in its output, in order, as tokens (`start`, `sha`, `line N`, `end`). */
export interface OutputReading {
  readonly tokens: readonly string[];
  /** The host named by each start line. */
  readonly hosts: readonly string[];
  readonly sha: readonly string[];
  /** Lines that carry the job's nonce but none of its formats. */
  readonly unexpected: readonly string[];
}

// Services print through tmux: carriage returns and the odd escape sequence are not the job's.
const ESCAPES = /\x1b\[[0-9;?]*[A-Za-z]|\r/g;

export function readOutput(job: Job, text: string): OutputReading {
  const tokens: string[] = [];
  const hosts: string[] = [];
  const sha: string[] = [];
  const unexpected: string[] = [];
  const n = job.nonce;
  for (const raw of text.split('\n')) {
    const line = raw.replace(ESCAPES, '');
    if (!line.includes(n)) continue;
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^${START} ${n} (\\S+)$`).exec(line))) {
      tokens.push(START);
      hosts.push(m[1]!);
    } else if ((m = new RegExp(`^${n} sha256 ([0-9a-f]{64})$`).exec(line))) {
      tokens.push('sha');
      sha.push(m[1]!);
    } else if ((m = new RegExp(`^${n} line ([0-9]+)$`).exec(line))) {
      tokens.push(`line ${m[1]}`);
    } else if (line === `${END} ${n}`) {
      tokens.push(END);
    } else {
      unexpected.push(line);
    }
  }
  return { tokens, hosts, sha, unexpected };
}

/** Did the job get as far as its first line (and so its workspace file)? */
export function started(reading: OutputReading): boolean {
  return reading.tokens.includes(START);
}

/** The job's output against what its kind must show: once, complete where it must be, in order, nothing twice. */
export function checkOutput(job: Job, reading: OutputReading): Problem[] {
  const problems: Problem[] = [];
  const starts = reading.tokens.filter((t) => t === START).length;
  if (starts > 1) {
    const hosts = [...new Set(reading.hosts)];
    problems.push({
      category: 'duplicated',
      why:
        hosts.length > 1
          ? `it ran twice: ${starts} start lines, from containers ${hosts.join(', ')}`
          : `it ran twice, or its output was repeated: ${starts} start lines, all from container ${hosts[0]}`,
    });
  }
  for (const line of reading.unexpected.slice(0, 3)) problems.push({ category: 'wrong', why: `output: a garbled line of the job: ${JSON.stringify(line)}` });
  if (job.input !== null) {
    const want = sha256(job.input.content);
    for (const got of new Set(reading.sha)) {
      if (got !== want) problems.push({ category: 'wrong', why: `output: the input file reached the job changed (SHA-256 ${got}, given ${want})` });
    }
  }
  if (starts > 1) return problems;

  const shape = SHAPES[job.kind];
  const expected = [START, ...(job.input !== null ? ['sha'] : []), ...Array.from({ length: job.lines }, (_, i) => `line ${i + 1}`), ...(shape === 'complete' ? [END] : [])];
  const got = reading.tokens;
  const twice = [...new Set(got.filter((t, i) => got.indexOf(t) !== i))];
  if (twice.length > 0) problems.push({ category: 'wrong', why: `output: repeated ${twice.slice(0, 5).map((t) => `"${t}"`).join(', ')}` });
  const firstDiff = got.findIndex((t, i) => t !== expected[i]);
  if (firstDiff !== -1) {
    const want = expected[firstDiff];
    problems.push({
      category: 'wrong',
      why: want === undefined ? `output: "${got[firstDiff]}" after the job's last line` : `output out of order: "${got[firstDiff]}" where "${want}" belongs (position ${firstDiff + 1})`,
    });
  } else if (got.length < expected.length) {
    const mustBeWhole = shape === 'complete' || shape === 'allLinesNoEnd';
    const mustStart = shape !== 'anyPrefix';
    if (mustBeWhole || (mustStart && got.length === 0)) {
      const last = got.at(-1);
      problems.push({
        category: 'wrong',
        why: `output incomplete: ${got.length} of the job's ${expected.length} lines, ${last === undefined ? 'none at all' : `ending at "${last}"`}`,
      });
    }
  }
  return problems;
}

/** The final state, exit code and reason the API shows, against the job's kind. */
export function checkEnd(job: Job, view: ExecutionView): Problem[] {
  const seen = `${view.state}${view.exitCode === null ? '' : ` (exit code ${view.exitCode})`}${view.error ? `: ${view.error}` : ''}`;
  const wrong = (expected: string): Problem[] => [{ category: 'wrong', why: `ended ${seen}; expected ${expected}` }];
  switch (job.kind) {
    case 'shell':
    case 'python':
      return view.state === 'completed' && view.exitCode === 0 ? [] : wrong('completed with exit code 0');
    case 'exit': {
      const ok = view.state === 'failed' && view.exitCode === job.exitCode && (view.error ?? '').includes(`exited with code ${job.exitCode}`);
      return ok ? [] : wrong(`failed, exit code ${job.exitCode}, "the job exited with code ${job.exitCode}"`);
    }
    case 'timeout':
      return view.state === 'failed' && /timed out/i.test(view.error ?? '') ? [] : wrong(`failed, timed out after ${job.timeoutS} s`);
    case 'cancelQueued':
    case 'cancelRunning':
    case 'service':
      return view.state === 'cancelled' ? [] : wrong('cancelled');
  }
}

/**
 * The execution's state events on the bus: exactly one final state, the last version, the same as the API
 * shows. Versions may be missing (a state superseded while NATS was down is published only as its
 * successor), but one version must never say two things.
 */
export function checkHistory(view: ExecutionView, events: readonly StateEvent[]): Problem[] {
  const problems: Problem[] = [];
  // The same event stored twice (a publish retried past the deduplication window) is one event.
  const distinct = new Map<string, StateEvent>();
  for (const e of events) distinct.set(JSON.stringify([e.version, e.state, e.exitCode, e.reason]), e);
  const ordered = [...distinct.values()].sort((a, b) => a.version - b.version);
  for (const [i, e] of ordered.entries()) {
    const before = ordered[i - 1];
    if (before?.version === e.version) problems.push({ category: 'wrong', why: `state events: version ${e.version} published as ${before.state} and as ${e.state}` });
  }
  const finals = ordered.filter((e) => FINAL.includes(e.state));
  const describe = (e: StateEvent) => `${e.state} (v${e.version}${e.reason ? `: ${e.reason}` : ''})`;
  if (finals.length === 0) {
    problems.push({ category: FINAL.includes(view.state) ? 'wrong' : 'lost', why: `no final state on the bus; its events: ${ordered.map(describe).join(' -> ') || 'none'}` });
    return problems;
  }
  if (finals.length > 1) problems.push({ category: 'duplicated', why: `final state published ${finals.length} times: ${finals.map(describe).join(', ')}` });
  const last = ordered.at(-1)!;
  if (!FINAL.includes(last.state)) problems.push({ category: 'wrong', why: `state moved on after its end: ${ordered.map(describe).join(' -> ')}` });
  const lastFinal = finals.at(-1)!;
  if (lastFinal.state !== view.state) problems.push({ category: 'wrong', why: `the API says ${view.state}, the bus's last final state is ${describe(lastFinal)}` });
  return problems;
}

/**
 * The workspace ZIP of a job that started: it must be a sound archive holding the file the job wrote (and
 * a Python job's input file), byte for byte. `scratchDir` is where the archive is put to be read.
 */
export async function checkZip(job: Job, zip: Buffer | Answer, scratchDir: string): Promise<Problem[]> {
  if (!Buffer.isBuffer(zip)) return [{ category: 'wrong', why: `workspace ZIP: the API answered ${zip.status} ${JSON.stringify(zip.body)}` }];
  const path = join(scratchDir, `${job.nonce}.zip`);
  await writeFile(path, zip);
  const test = spawnSync('unzip', ['-tq', path], { encoding: 'utf8' });
  if (test.status !== 0) return [{ category: 'wrong', why: `workspace ZIP (${zip.length} bytes) is broken: ${(test.stdout + test.stderr).trim().split('\n').slice(0, 3).join(' | ')}` }];
  const problems: Problem[] = [];
  for (const file of [job.result, ...(job.input ? [job.input] : [])]) {
    const read = spawnSync('unzip', ['-p', path, file.path], { maxBuffer: 64 * 1024 * 1024 });
    if (read.status !== 0) problems.push({ category: 'wrong', why: `workspace ZIP lacks ${file.path}` });
    else if (!read.stdout.equals(Buffer.from(file.content, 'utf8'))) problems.push({ category: 'wrong', why: `workspace ZIP: ${file.path} differs from what the job wrote (${read.stdout.length} bytes, expected ${Buffer.byteLength(file.content)})` });
  }
  return problems;
}
