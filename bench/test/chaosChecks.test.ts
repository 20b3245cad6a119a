// The chaos run's checks on their own: each kind of damage a crash can do to an execution must be caught,
// and told apart (ran twice, output repeated or cut, wrong end, events that contradict each other).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkEnd, checkHistory, checkOutput, readOutput, type Category, type Problem } from '../src/chaos/checks.js';
import type { ExecutionView } from '../src/chaos/client.js';
import { planJobs, sha256, type Job, type JobKind } from '../src/chaos/jobs.js';
import { Random } from '../src/chaos/random.js';
import type { StateEvent } from '../src/chaos/stateHistory.js';

const LINES = 5;
const jobs = planJobs(7, LINES, 256, new Random(7));
const jobOf = (kind: JobKind): Job => jobs.find((j) => j.kind === kind)!;

/** What a job of this kind prints when all goes well, amid Paddock's own lines. */
function goodOutput(job: Job, host = 'c0ffee123456'): string[] {
  const out = ['[paddock] starting the workflow', `start ${job.nonce} ${host}`];
  if (job.input) out.push(`${job.nonce} sha256 ${sha256(job.input.content)}`);
  for (let i = 1; i <= job.lines; i++) out.push(`${job.nonce} line ${i}`);
  if (['shell', 'python', 'exit', 'service'].includes(job.kind)) out.push(`end ${job.nonce}`);
  return out;
}

const categories = (problems: readonly Problem[]): Category[] => [...new Set(problems.map((p) => p.category))].sort();
const outputProblems = (job: Job, lines: readonly string[]) => checkOutput(job, readOutput(job, `${lines.join('\n')}\n`));

test('every kind of job passes with the output it prints when all goes well, tmux carriage returns included', () => {
  assert.equal(jobs.length, 7);
  for (const job of jobs) assert.deepEqual(outputProblems(job, goodOutput(job)), [], job.kind);
  const service = jobOf('service');
  assert.deepEqual(outputProblems(service, goodOutput(service).map((l) => `${l}\r`)), []);
});

test('a job that ran twice is duplicated, whether in two containers or twice in one', () => {
  const job = jobOf('shell');
  const twoHosts = outputProblems(job, [...goodOutput(job, 'aaaaaaaaaaaa'), ...goodOutput(job, 'bbbbbbbbbbbb')]);
  assert.deepEqual(categories(twoHosts), ['duplicated']);
  assert.match(twoHosts[0]!.why, /aaaaaaaaaaaa, bbbbbbbbbbbb/);
  const sameHost = outputProblems(job, [...goodOutput(job), ...goodOutput(job)]);
  assert.deepEqual(categories(sameHost), ['duplicated']);
});

test('a line missing, repeated or out of order, or a cut output, is wrong', () => {
  const job = jobOf('exit');
  const good = goodOutput(job);
  const line = (n: number) => `${job.nonce} line ${n}`;
  const without3 = good.filter((l) => l !== line(3));
  assert.match(outputProblems(job, without3)[0]!.why, /out of order: "line 4" where "line 3" belongs/);
  const repeated = [...good.slice(0, 4), line(2), ...good.slice(4)];
  assert.deepEqual(categories(outputProblems(job, repeated)), ['wrong']);
  assert.ok(outputProblems(job, repeated).some((p) => /repeated "line 2"/.test(p.why)));
  const swapped = good.map((l) => (l === line(2) ? line(3) : l === line(3) ? line(2) : l));
  assert.deepEqual(categories(outputProblems(job, swapped)), ['wrong']);
  const cut = good.slice(0, -2);
  assert.match(outputProblems(job, cut)[0]!.why, /incomplete: 5 of the job's 7 lines, ending at "line 4"/);
  assert.match(outputProblems(job, [...good.slice(0, 3), `${job.nonce} li`])[0]!.why, /garbled/);
});

test('a cancelled job may stop anywhere after its start, one cancelled while queued may not have started at all', () => {
  const running = jobOf('cancelRunning');
  assert.deepEqual(outputProblems(running, goodOutput(running).slice(0, 4)), []);
  assert.deepEqual(categories(outputProblems(running, ['[paddock] cancelled'])), ['wrong']);
  const queued = jobOf('cancelQueued');
  assert.deepEqual(outputProblems(queued, ['[paddock] cancelled before it started']), []);
  assert.deepEqual(outputProblems(queued, goodOutput(queued).slice(0, 3)), []);
});

test('a timed-out job must show every line it printed before the limit', () => {
  const job = jobOf('timeout');
  assert.deepEqual(outputProblems(job, goodOutput(job)), []);
  assert.deepEqual(categories(outputProblems(job, goodOutput(job).slice(0, -1))), ['wrong']);
});

test('a Python job whose input file arrived changed is wrong', () => {
  const job = jobOf('python');
  const changed = goodOutput(job).map((l) => (l.includes(' sha256 ') ? `${job.nonce} sha256 ${sha256('something else')}` : l));
  assert.match(outputProblems(job, changed)[0]!.why, /input file reached the job changed/);
});

const view = (state: string, exitCode: number | null, error: string | null): ExecutionView => ({ id: 'x', state, exitCode, error, command: null, script: null });

test('the end must be the one the job asked for', () => {
  const exit = jobOf('exit');
  assert.deepEqual(checkEnd(exit, view('failed', exit.exitCode, `the job exited with code ${exit.exitCode}`)), []);
  assert.deepEqual(categories(checkEnd(exit, view('failed', null, 'broker test stopped answering for 120s'))), ['wrong']);
  assert.deepEqual(checkEnd(jobOf('timeout'), view('failed', 137, 'timed out: the job ran longer than its 3s limit')), []);
  assert.deepEqual(categories(checkEnd(jobOf('timeout'), view('failed', 1, 'the job exited with code 1'))), ['wrong']);
  assert.deepEqual(checkEnd(jobOf('shell'), view('completed', 0, null)), []);
  assert.deepEqual(categories(checkEnd(jobOf('shell'), view('cancelled', 143, 'cancelled'))), ['wrong']);
  assert.deepEqual(categories(checkEnd(jobOf('service'), view('completed', 0, null))), ['wrong']);
});

const event = (version: number, state: string, reason = ''): StateEvent => ({ version, state, exitCode: null, reason, brokerId: 'b' });

test('the bus must carry one final state, the last, the same as the API shows; missing versions are allowed', () => {
  const done = view('completed', 0, null);
  assert.deepEqual(checkHistory(done, [event(1, 'queued'), event(3, 'executing'), event(4, 'completed'), event(4, 'completed')]), []);
  assert.deepEqual(categories(checkHistory(done, [event(1, 'queued'), event(2, 'completed'), event(3, 'failed', 'lost')])), ['duplicated', 'wrong']);
  assert.deepEqual(categories(checkHistory(done, [event(1, 'queued'), event(2, 'completed'), event(3, 'executing')])), ['wrong']);
  assert.deepEqual(categories(checkHistory(done, [event(1, 'queued'), event(2, 'executing'), event(2, 'cancelled'), event(3, 'completed')])), ['duplicated', 'wrong']);
  assert.deepEqual(categories(checkHistory(done, [event(1, 'queued'), event(2, 'failed')])), ['wrong']);
  assert.deepEqual(categories(checkHistory(done, [event(1, 'queued')])), ['wrong']);
  assert.deepEqual(categories(checkHistory(view('executing', null, null), [event(1, 'queued'), event(2, 'executing')])), ['lost']);
});
