import { createHash } from 'node:crypto';
import type { Random } from './random.js';

/**
 * What an execution of the chaos run does, and so what its end must look like:
 * - `shell`: prints its lines and ends with 0: completed.
 * - `python`: a script given an input file; prints the file's SHA-256 and its lines: completed.
 * - `exit`: prints its lines and exits with a code from 1 to 125: failed, with that code.
 * - `timeout`: prints its lines at once, then sleeps past its `timeoutS`: failed, timed out.
 * - `cancelQueued`: cancelled right after it was accepted, whether or not it had started: cancelled.
 * - `cancelRunning`: cancelled a moment after its first line showed in its output: cancelled.
 * - `service`: `service: true`; cancelled a moment after its last line showed: cancelled.
 */
export type JobKind = 'shell' | 'python' | 'exit' | 'timeout' | 'cancelQueued' | 'cancelRunning' | 'service';

export const JOB_KINDS: readonly JobKind[] = ['shell', 'python', 'exit', 'timeout', 'cancelQueued', 'cancelRunning', 'service'];

/** How often each kind is drawn, after the first of each kind. */
const WEIGHTS: Readonly<Record<JobKind, number>> = {
  shell: 35,
  python: 20,
  exit: 10,
  timeout: 8,
  cancelQueued: 9,
  cancelRunning: 9,
  service: 9,
};

/** A file every job writes into /workspace before it prints its first line, and the ZIP must hold. */
export interface WorkspaceFile {
  /** Relative to /workspace, as in the ZIP. */
  readonly path: string;
  readonly content: string;
}

export interface Job {
  /** Its place in the plan, 0-based: the order of submission. */
  readonly index: number;
  readonly kind: JobKind;
  /** Marks every line the job prints, so that its output can be told from Paddock's own lines. */
  readonly nonce: string;
  readonly lines: number;
  readonly result: WorkspaceFile;
  /** Python jobs only: the file given in the request's `files`. */
  readonly input: WorkspaceFile | null;
  /** `exit` jobs: the code they exit with; 0 otherwise. */
  readonly exitCode: number;
  /** Time limit asked for (`timeout` jobs only), in seconds. */
  readonly timeoutS: number | null;
  /** cancelRunning and service: how long after the line it waits for the client cancels. */
  readonly cancelDelayMs: number;
  /** The body of POST /api/v1/executions. */
  readonly request: Readonly<Record<string, unknown>>;
}

/** The job's first line: `start <nonce> <hostname of the container>`. */
export const START = 'start';
export const END = 'end';
const RESULT_LINES = 64;
/** Long enough that only a cancel or a timeout ends these jobs within any run. */
const LONG_SLEEP_S = 600;
const TIMEOUT_S = 3;

/** The plan: `count` jobs, at least one of each kind when `count` allows, in a shuffled order. */
export function planJobs(count: number, lines: number, inputFileBytes: number, random: Random): Job[] {
  const kinds: JobKind[] = JOB_KINDS.slice(0, count);
  const total = Object.values(WEIGHTS).reduce((a, b) => a + b, 0);
  while (kinds.length < count) {
    let r = random.next() * total;
    const kind = JOB_KINDS.find((k) => (r -= WEIGHTS[k]) < 0) ?? 'shell';
    kinds.push(kind);
  }
  return random.shuffled(kinds).map((kind, index) => makeJob(index, kind, lines, inputFileBytes, random));
}

function makeJob(index: number, kind: JobKind, lines: number, inputFileBytes: number, random: Random): Job {
  const nonce = random.token(12);
  const result: WorkspaceFile = {
    path: `result-${nonce}.txt`,
    content: Array.from({ length: RESULT_LINES }, (_, i) => `${nonce} result ${i + 1}\n`).join(''),
  };
  // Jobs last from a fraction of a second to a few seconds, so that kills find them in every phase.
  const lineDelayMs = kind === 'timeout' ? 0 : random.int(0, 200);
  const exitCode = kind === 'exit' ? random.int(1, 125) : 0;
  const cancelDelayMs = kind === 'cancelRunning' ? random.int(100, 2000) : kind === 'service' ? random.int(500, 3000) : 0;
  const input: WorkspaceFile | null = kind === 'python' ? { path: `input/data-${nonce}.txt`, content: inputText(random, inputFileBytes) } : null;
  const timeoutS = kind === 'timeout' ? TIMEOUT_S : null;
  const job = { index, kind, nonce, lines, result, input, exitCode, timeoutS, cancelDelayMs };
  return { ...job, request: requestOf(job, lineDelayMs) };
}

function requestOf(job: Omit<Job, 'request'>, lineDelayMs: number): Record<string, unknown> {
  if (job.kind === 'python') {
    return { kind: 'python', script: pythonScript(job, lineDelayMs), files: { [job.input!.path]: job.input!.content } };
  }
  const request: Record<string, unknown> = { kind: 'shell', command: shellCommand(job, lineDelayMs) };
  if (job.timeoutS !== null) request['timeoutS'] = job.timeoutS;
  if (job.kind === 'service') request['service'] = true;
  return request;
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

function shellCommand(job: Omit<Job, 'request'>, lineDelayMs: number): string {
  const { nonce, lines } = job;
  const sleep = lineDelayMs > 0 ? ` sleep ${seconds(lineDelayMs)};` : '';
  const ending =
    job.kind === 'shell' || job.kind === 'service'
      ? `echo "${END} ${nonce}"`
      : job.kind === 'exit'
        ? `echo "${END} ${nonce}"; exit ${job.exitCode}`
        : `sleep ${LONG_SLEEP_S}`;
  return [
    `i=1; while [ $i -le ${RESULT_LINES} ]; do echo "${nonce} result $i"; i=$((i+1)); done > /workspace/${job.result.path}`,
    `echo "${START} ${nonce} $(cat /etc/hostname)"`,
    `i=1; while [ $i -le ${lines} ]; do echo "${nonce} line $i"; i=$((i+1));${sleep} done`,
    ending,
  ].join('\n');
}

function pythonScript(job: Omit<Job, 'request'>, lineDelayMs: number): string {
  const { nonce, lines } = job;
  return [
    'import hashlib, socket, time',
    `with open("/workspace/${job.result.path}", "w") as f:`,
    `    f.write("".join(f"${nonce} result {i}\\n" for i in range(1, ${RESULT_LINES + 1})))`,
    `print(f"${START} ${nonce} {socket.gethostname()}")`,
    `with open("/workspace/${job.input!.path}", "rb") as f:`,
    `    print(f"${nonce} sha256 {hashlib.sha256(f.read()).hexdigest()}")`,
    `for i in range(1, ${lines + 1}):`,
    `    print(f"${nonce} line {i}")`,
    `    time.sleep(${seconds(lineDelayMs)})`,
    `print("${END} ${nonce}")`,
    '',
  ].join('\n');
}

/** Printable lines of pseudo-random words, `bytes` long. */
function inputText(random: Random, bytes: number): string {
  const parts: string[] = [];
  let size = 0;
  while (size < bytes) {
    const line = `${random.token(random.int(1, 60))}\n`;
    parts.push(line);
    size += line.length;
  }
  return parts.join('').slice(0, bytes);
}

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
