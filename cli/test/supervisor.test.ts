import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { restartDelayMs, Supervised, type SupervisorHooks } from '../src/supervisor.js';

// A child that reports its pid once its SIGTERM handler is in place. Modes: `crash-once` exits 3 the first
// time (leaving a marker file), `always-crash` exits 3 every time, `stubborn` ignores SIGTERM.
const CHILD = `
import { existsSync, writeFileSync } from 'node:fs';
const [mode, marker] = process.argv.slice(2);
process.on('SIGTERM', () => {
  if (mode === 'stubborn') { console.log('ignoring SIGTERM'); return; }
  console.log('bye');
  process.exit(0);
});
console.log('started ' + process.pid);
console.error('to stderr');
if (mode === 'always-crash' || (mode === 'crash-once' && !existsSync(marker))) {
  writeFileSync(marker, '');
  process.exit(3);
}
setInterval(() => {}, 1000);
`;

const FAST = { initialDelayMs: 10, maxDelayMs: 40, resetAfterMs: 60_000 };

let dir: string;
let script: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-supervisor-'));
  script = join(dir, 'child.mjs');
  await writeFile(script, CHILD);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The child's output and the supervisor's events, in order. */
function recorder(): { events: string[]; hooks: SupervisorHooks } {
  const events: string[] = [];
  return {
    events,
    hooks: {
      onStart: () => events.push('start'),
      onLine: (stream, line) => events.push(`${stream}: ${line.replace(/\d+$/, 'PID')}`),
      onExit: (exit) => events.push(`exit code=${exit.code} signal=${exit.signal} restartInMs=${exit.restartInMs}`),
      onSpawnError: (err) => events.push(`spawn error ${err.code}`),
    },
  };
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await sleep(10);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('restarts a child that exits, then stops it with SIGTERM', async () => {
  const marker = join(dir, 'crash-once');
  const { events, hooks } = recorder();
  const proc = Supervised.start({ name: 'svc', command: process.execPath, args: [script, 'crash-once', marker], env: process.env }, { policy: FAST, hooks });
  await until(() => events.filter((e) => e === 'stdout: started PID').length === 2);
  const pid = proc.pid;
  assert.ok(pid !== undefined && alive(pid));
  assert.ok(existsSync(marker));
  assert.ok(events.includes('exit code=3 signal=null restartInMs=10'), events.join('\n'));
  assert.ok(events.includes('stderr: to stderr'));

  const stopped = await proc.stop(10_000);
  assert.deepEqual(stopped, { name: 'svc', exit: { code: 0, signal: null }, forced: false });
  await until(() => events.includes('stdout: bye'));
  assert.equal(alive(pid), false);
  assert.equal(events.filter((e) => e === 'start').length, 2);
  assert.equal(proc.pid, undefined);
});

test('a child that ignores SIGTERM is killed after the grace time', async () => {
  const { events, hooks } = recorder();
  const proc = Supervised.start({ name: 'stubborn', command: process.execPath, args: [script, 'stubborn'], env: process.env }, { policy: FAST, hooks });
  await until(() => events.includes('stdout: started PID'));
  const pid = proc.pid as number;
  const stopped = await proc.stop(300);
  assert.deepEqual(stopped, { name: 'stubborn', exit: { code: null, signal: 'SIGKILL' }, forced: true });
  assert.ok(events.includes('stdout: ignoring SIGTERM'));
  assert.equal(alive(pid), false);
});

test('kill() cuts a stop short, and every stop() returns the first result', async () => {
  const { events, hooks } = recorder();
  const proc = Supervised.start({ name: 'stubborn', command: process.execPath, args: [script, 'stubborn'], env: process.env }, { hooks });
  await until(() => events.includes('stdout: started PID'));
  const stopping = proc.stop(600_000);
  await until(() => events.includes('stdout: ignoring SIGTERM'));
  const killed = await proc.kill();
  assert.equal(await stopping, killed);
  assert.equal(await proc.stop(1), killed);
  assert.deepEqual(killed, { name: 'stubborn', exit: { code: null, signal: 'SIGKILL' }, forced: true });
});

test('stop() during the wait before a restart ends the wait; nothing is started again', { timeout: 5_000 }, async () => {
  const { events, hooks } = recorder();
  const policy = { initialDelayMs: 600_000, maxDelayMs: 600_000, resetAfterMs: 600_000 };
  const proc = Supervised.start(
    { name: 'crashy', command: process.execPath, args: [script, 'always-crash', join(dir, 'always')], env: process.env },
    { policy, hooks },
  );
  await until(() => events.some((e) => e.startsWith('exit ')));
  assert.deepEqual(await proc.stop(1_000), { name: 'crashy', exit: undefined, forced: false });
  assert.equal(events.filter((e) => e === 'start').length, 1);
});

test('a command that cannot be started is reported and retried until stopped', async () => {
  const { events, hooks } = recorder();
  const proc = Supervised.start({ name: 'missing', command: join(dir, 'no-such-binary'), args: [], env: process.env }, { policy: FAST, hooks });
  await until(() => events.filter((e) => e === 'spawn error ENOENT').length >= 2);
  await proc.stop(1_000);
  assert.equal(events.includes('start'), false);
});

test('the restart delay doubles up to the maximum and starts over after a long run', () => {
  const policy = { initialDelayMs: 500, maxDelayMs: 10_000, resetAfterMs: 30_000 };
  let delay: number | undefined;
  const delays: number[] = [];
  for (let i = 0; i < 7; i++) {
    delay = restartDelayMs(delay, 100, policy);
    delays.push(delay);
  }
  assert.deepEqual(delays, [500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
  assert.equal(restartDelayMs(10_000, 30_000, policy), 500);
  assert.equal(restartDelayMs(10_000, 29_999, policy), 10_000);
});
