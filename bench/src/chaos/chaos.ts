import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import { startPaddock, type RunningPaddock } from '@paddock/testkit';
import { machineInfo } from '../machine.js';
import { countsOf, perPart, type BadExecution, type ChaosReport } from './chaosReport.js';
import { checkEnd, checkHistory, checkOutput, checkZip, readOutput, started, CATEGORIES, type Problem } from './checks.js';
import { ChaosClient, FINAL_STATES, type ExecutionView } from './client.js';
import { runFlow, type FlowResult } from './flow.js';
import { JOB_KINDS, planJobs, type Job } from './jobs.js';
import { Killer } from './killer.js';
import type { ChaosOptions } from './options.js';
import { findUpProcess, partsUnder, PARTS } from './parts.js';
import { Random } from './random.js';
import { readStateHistory, type StateEvent } from './stateHistory.js';

/** The labels the broker puts on every container it makes (services/broker README). */
const EXECUTION_LABEL = 'io.paddock.execution-id';
const BROKER_LABEL = 'io.paddock.broker-id';

const POLL_MS = 1000;
/** "Final means stopped": an ended execution's container must be gone within this. */
const CONTAINER_GONE_WITHIN_MS = 15_000;
const LOG_LINES_PER_FILE = 6;
const CHECK_GRACE_MS = 30_000;

export interface ChaosIo {
  readonly dockerSocket: string;
  readonly log: (line: string) => void;
}

/**
 * One chaos run: a Paddock of its own, the planned jobs submitted evenly over the kill phase while the
 * killer SIGKILLs a part every `killEveryMs`, then everything given time to come back and every accepted
 * execution checked. Stops what it started, also on failure.
 */
export async function runChaos(options: ChaosOptions, io: ChaosIo): Promise<ChaosReport> {
  const docker = new Docker({ socketPath: io.dockerSocket });
  await docker.ping();
  await docker
    .getImage(options.image)
    .inspect()
    .catch((err: unknown) => {
      throw new Error(`image ${options.image} is not in the Docker engine (run \`npm run setup\`)`, { cause: err });
    });
  const machine = await machineInfo(docker);
  const t0 = Date.now();
  const progress = (message: string) => io.log(`[chaos ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${message}`);
  const random = new Random(options.seed);
  const jobs = planJobs(options.executions, options.lines, options.inputFileBytes, random);
  progress(`seed ${options.seed}; starting Paddock`);

  const paddock = await startPaddock({ env: { PADDOCK_DEFAULT_IMAGE: options.image, LOG_LEVEL: 'info' } });
  const scratch = await mkdtemp(join(tmpdir(), 'paddock-chaos-'));
  try {
    const upPid = findUpProcess(process.pid);
    if (upPid === undefined) throw new Error('cannot find the `paddock up` process this run started');
    const client = new ChaosClient(paddock.url, paddock.admin.token);

    const killPhaseMs = Math.max(options.kills * options.killEveryMs, 1000);
    const deadlineMs = Date.now() + killPhaseMs + options.settleTimeoutMs;
    const spacingMs = killPhaseMs / jobs.length;
    const firstAtMs = Date.now();
    progress(`${jobs.length} executions over ${(killPhaseMs / 1000).toFixed(0)} s, ${options.kills} kills`);
    const killer = new Killer(upPid, options, random, progress);
    const killing = killer.run();
    const flows = await Promise.all(jobs.map((job) => runFlow(client, job, firstAtMs + job.index * spacingMs, deadlineMs)));
    await killing;
    progress(`kills done (${killer.kills.length}); waiting for every part and /healthz`);
    const runProblems: string[] = [];
    const allBack = await waitUntil(deadlineMs, async () => PARTS.every((p) => partsUnder(upPid).has(p)) && (await client.healthy()));
    if (!allBack) {
      const running = partsUnder(upPid);
      runProblems.push(`Paddock was not whole again by the deadline: ${PARTS.map((p) => `${p} ${running.has(p) ? 'running' : 'not running'}`).join(', ')}; /healthz not 200`);
    }

    const accepted = flows.filter((f): f is Extract<FlowResult, { accepted: true }> => f.accepted);
    progress(`${accepted.length} accepted; waiting for all to end`);
    const { views, phantoms } = await waitAllFinal(client, accepted, jobs, deadlineMs, progress);

    // Past the deadline Paddock is given a little more time to answer the checks' reads, so that a stuck
    // execution is reported as such rather than as an unreadable one.
    const checkDeadlineMs = Math.max(deadlineMs, Date.now() + CHECK_GRACE_MS);
    progress('reading the state events from the bus');
    const history = await withRetry(checkDeadlineMs, () => readStateHistory(paddock.natsOptions('paddock-chaos'))).catch((err: unknown) => {
      runProblems.push(`the state events could not be read from NATS: ${(err as Error).message}`);
      return null;
    });

    progress('checking every execution');
    const problems = new Map<string, Problem[]>();
    const add = (id: string, more: readonly Problem[]) => more.length > 0 && problems.set(id, [...(problems.get(id) ?? []), ...more]);
    for (const flow of accepted) {
      const events = history === null ? null : (history.get(flow.id) ?? []);
      add(
        flow.id,
        await checkExecution(client, flow, views.get(flow.id), events, scratch, checkDeadlineMs).catch((err: unknown) => [
          { category: 'lost' as const, why: `the API could not answer about it: ${(err as Error).message}` },
        ]),
      );
    }
    for (const [id, view] of phantoms) {
      if (!FINAL_STATES.includes(view.state)) add(id, [{ category: 'lost', why: `a phantom (stored for a POST whose answer was lost) still ${view.state}, though cancelled` }]);
    }

    const ours = new Set([...accepted.map((f) => f.id), ...phantoms.keys()]);
    for (const [id, containers] of await leftContainers(docker, paddock, ours)) {
      add(id, [{ category: 'orphaned', why: `container(s) left after its end: ${containers.join('; ')}` }]);
    }

    const flowOf = new Map(accepted.map((f) => [f.id, f]));
    const bad: BadExecution[] = [];
    for (const [id, list] of problems) {
      const flow = flowOf.get(id);
      const job = flow?.job ?? phantomJob(jobs, phantoms.get(id));
      bad.push({ id, kind: job?.kind ?? 'shell', nonce: job?.nonce ?? '', acceptedAt: flow?.acceptedAt ?? null, problems: list, logs: await logExcerpt(paddock, id) });
    }

    const notBack = [
      ...killer.missing.map((m) => ({ part: m.part, atMs: m.atMs, what: `not running when its turn to be killed came, nor within ${m.waitedMs} ms` })),
      ...killer.kills.filter((k) => k.backAfterMs === null).map((k) => ({ part: k.part, atMs: k.atMs, what: `killed (pid ${k.pid}) and not running again within ${options.backWithinMs} ms` })),
    ];
    const unaccepted = flows.filter((f): f is Extract<FlowResult, { accepted: false }> => !f.accepted).map((f) => ({ kind: f.job.kind, nonce: f.job.nonce, why: f.why }));
    const counts = countsOf(bad);
    if (killer.kills.length < options.kills) runProblems.push(`only ${killer.kills.length} of ${options.kills} kills were made`);
    const passed = CATEGORIES.every((c) => counts[c] === 0) && notBack.length === 0 && unaccepted.length === 0 && runProblems.length === 0;
    const logsKeptIn = passed ? null : await keepLogs(paddock);
    progress(`lost ${counts.lost}, duplicated ${counts.duplicated}, wrong ${counts.wrong}, orphaned ${counts.orphaned}; parts not back ${notBack.length}`);

    return {
      machine,
      settings: options,
      durationS: Math.round((Date.now() - t0) / 1000),
      kills: {
        total: killer.kills.length,
        byPart: perPart((p) => {
          const of = killer.kills.filter((k) => k.part === p);
          const back = of.flatMap((k) => (k.backAfterMs === null ? [] : [k.backAfterMs]));
          return { kills: of.length, notBack: of.length - back.length, slowestBackMs: back.length > 0 ? Math.max(...back) : null };
        }),
        list: killer.kills,
      },
      notBack,
      executions: {
        accepted: accepted.length,
        byKind: Object.fromEntries(JOB_KINDS.map((k) => [k, accepted.filter((f) => f.job.kind === k).length])) as ChaosReport['executions']['byKind'],
        unaccepted,
        ambiguousRetries: accepted.reduce((n, f) => n + f.ambiguousAttempts, 0),
        phantoms: phantoms.size,
      },
      counts,
      bad,
      runProblems,
      logsKeptIn,
      passed,
    };
  } finally {
    progress('stopping Paddock');
    await paddock.stop();
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Polls the list of executions until every accepted one (and every phantom) has ended, or the deadline. */
async function waitAllFinal(
  client: ChaosClient,
  accepted: readonly Extract<FlowResult, { accepted: true }>[],
  jobs: readonly Job[],
  deadlineMs: number,
  progress: (message: string) => void,
): Promise<{ views: Map<string, ExecutionView>; phantoms: Map<string, ExecutionView> }> {
  const acceptedIds = new Set(accepted.map((f) => f.id));
  const nonces = jobs.map((j) => j.nonce);
  const cancelled = new Set<string>();
  let views = new Map<string, ExecutionView>();
  let phantoms = new Map<string, ExecutionView>();
  let lastReportMs = 0;
  for (;;) {
    const all = await client.list(deadlineMs).catch(() => null);
    if (all !== null) {
      views = new Map(all.filter((v) => acceptedIds.has(v.id)).map((v) => [v.id, v]));
      phantoms = new Map(all.filter((v) => !acceptedIds.has(v.id) && nonces.some((n) => `${v.command ?? ''}${v.script ?? ''}`.includes(n))).map((v) => [v.id, v]));
      // A phantom is a job the client never knew it had: a real client would find and stop it like this.
      for (const [id, view] of phantoms) {
        if (!FINAL_STATES.includes(view.state) && !cancelled.has(id)) {
          cancelled.add(id);
          await client.cancel(id, deadlineMs).catch(() => undefined);
        }
      }
      const open = [...acceptedIds].filter((id) => !FINAL_STATES.includes(views.get(id)?.state ?? '')).length + [...phantoms.values()].filter((v) => !FINAL_STATES.includes(v.state)).length;
      if (open === 0) return { views, phantoms };
      if (Date.now() - lastReportMs > 10_000) {
        lastReportMs = Date.now();
        progress(`${open} execution(s) not ended yet`);
      }
    }
    if (Date.now() > deadlineMs) return { views, phantoms };
    await sleep(POLL_MS);
  }
}

async function checkExecution(
  client: ChaosClient,
  flow: Extract<FlowResult, { accepted: true }>,
  listed: ExecutionView | undefined,
  events: readonly StateEvent[] | null,
  scratch: string,
  deadlineMs: number,
): Promise<Problem[]> {
  const { job, id } = flow;
  const view = listed ?? (await client.get(id, deadlineMs).catch(() => null));
  if (view === null) return [{ category: 'lost', why: 'accepted with 201, then unknown to the API (404)' }];
  const notes = flow.notes.length > 0 ? ` (client: ${flow.notes.join('; ')})` : '';
  if (!FINAL_STATES.includes(view.state)) {
    const last = events?.at(-1);
    return [{ category: 'lost', why: `still ${view.state} at the deadline${last ? `; last state event ${last.state} v${last.version}${last.reason ? `: ${last.reason}` : ''}` : ''}${notes}` }];
  }
  const problems: Problem[] = [...checkEnd(job, view).map((p) => ({ ...p, why: p.why + notes })), ...(events === null ? [] : checkHistory(view, events))];
  const reading = readOutput(job, await client.logs(id, deadlineMs));
  problems.push(...checkOutput(job, reading));
  if (started(reading)) problems.push(...(await checkZip(job, await client.artifacts(id, deadlineMs), scratch)));
  return problems;
}

/** Containers of these executions, or of this Paddock's broker, still there `CONTAINER_GONE_WITHIN_MS` after all ended. */
async function leftContainers(docker: Docker, paddock: RunningPaddock, ours: ReadonlySet<string>): Promise<Map<string, string[]>> {
  const brokerId = paddock.env['PADDOCK_BROKER_ID'];
  const deadline = Date.now() + CONTAINER_GONE_WITHIN_MS;
  for (;;) {
    const all = await docker.listContainers({ all: true, filters: { label: [EXECUTION_LABEL] } });
    const left = all.filter((c) => ours.has(c.Labels[EXECUTION_LABEL] ?? '') || c.Labels[BROKER_LABEL] === brokerId);
    if (left.length === 0 || Date.now() > deadline) {
      const byId = new Map<string, string[]>();
      for (const c of left) {
        const id = c.Labels[EXECUTION_LABEL] ?? '';
        byId.set(id, [...(byId.get(id) ?? []), `${c.Id.slice(0, 12)} ${c.State} (${c.Status})`]);
      }
      return byId;
    }
    await sleep(POLL_MS);
  }
}

/** The job a phantom was submitted for (by the nonce in its command or script). */
function phantomJob(jobs: readonly Job[], view: ExecutionView | undefined): Job | undefined {
  if (view === undefined) return undefined;
  return jobs.find((j) => `${view.command ?? ''}${view.script ?? ''}`.includes(j.nonce));
}

/** The first few lines of each log of PADDOCK_HOME/logs that name the execution, and the supervisor's own lines. */
async function logExcerpt(paddock: RunningPaddock, id: string): Promise<string[]> {
  const dir = join(paddock.home, 'logs');
  const files = await readdir(dir).catch(() => [] as string[]);
  const out: string[] = [];
  for (const file of files.sort()) {
    const text = await readFile(join(dir, file), 'utf8').catch(() => '');
    const lines = text.split('\n').filter((l) => l.includes(id));
    if (lines.length === 0) continue;
    out.push(`${file}: ${lines.length} line(s) name it; the first and last:`);
    const shown = lines.length <= LOG_LINES_PER_FILE ? lines : [...lines.slice(0, LOG_LINES_PER_FILE / 2), '…', ...lines.slice(-LOG_LINES_PER_FILE / 2)];
    out.push(...shown.map((l) => `  ${l.length > 400 ? `${l.slice(0, 400)}…` : l}`));
  }
  return out;
}

/** A copy of PADDOCK_HOME/logs (and what `paddock up` printed) that outlives the run, for a person to read. */
async function keepLogs(paddock: RunningPaddock): Promise<string | null> {
  try {
    const kept = await mkdtemp(join(tmpdir(), 'paddock-chaos-logs-'));
    await cp(join(paddock.home, 'logs'), kept, { recursive: true });
    await writeFile(join(kept, 'paddock-up.out'), paddock.output());
    return kept;
  } catch {
    return null;
  }
}

async function waitUntil(deadlineMs: number, condition: () => Promise<boolean>): Promise<boolean> {
  while (Date.now() < deadlineMs) {
    if (await condition()) return true;
    await sleep(POLL_MS);
  }
  return false;
}

async function withRetry<T>(deadlineMs: number, attempt: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (Date.now() > deadlineMs) throw err;
      await sleep(POLL_MS);
    }
  }
}
