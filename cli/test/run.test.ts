// The commands that talk to the REST API, run in memory (runCli with a test Context) against a real
// Paddock: one `paddock up` for the whole file.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startPaddock, type RunningPaddock } from '@paddock/testkit';
import { runCli } from '../src/cli.js';
import { testContext } from './testContext.js';

const ID = /^[0-9a-z]{22}$/;

let paddock: RunningPaddock;
let dir: string;

before(async () => {
  [paddock, dir] = await Promise.all([startPaddock(), mkdtemp(join(tmpdir(), 'paddock-run-'))]);
});

after(async () => {
  await paddock?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function env(): Promise<Record<string, string>> {
  return { PADDOCK_URL: paddock.url, PADDOCK_TOKEN: (await readFile(join(paddock.home, 'admin-token'), 'utf8')).trim(), PADDOCK_HOME: dir };
}

/** `run` prints the execution id as the first line on stderr. */
function idOf(stderr: string): string {
  const first = stderr.split('\n')[0] ?? '';
  assert.match(first, ID, `stderr starts with the execution id:\n${stderr}`);
  return first;
}

test('run streams the output, exits with the command status, and sends the options as given', { timeout: 120_000 }, async () => {
  const { ctx, out } = testContext(await env());
  const status = await runCli(ctx, ['run', '--cpus', '0.5', '--memory', '256', '--timeout', '30', '--network', 'bridge', '--', 'sh', '-c', 'echo hello; echo "a b"; exit 7']);
  assert.equal(status, 7, out.stderr);
  assert.equal(out.stdout, 'hello\na b\n');
  const execution = (await paddock.admin.request('GET', `/api/v1/executions/${idOf(out.stderr)}`)).body as Record<string, unknown>;
  assert.equal(execution['command'], `sh -c 'echo hello; echo "a b"; exit 7'`);
  assert.deepEqual(
    { state: execution['state'], exitCode: execution['exitCode'], resources: execution['resources'], timeoutS: execution['timeoutS'], network: execution['network'] },
    { state: 'failed', exitCode: 7, resources: { cpus: 0.5, memoryMb: 256, diskMb: 0 }, timeoutS: 30, network: 'bridge' },
  );
});

test('run sends env, files and a python script from stdin; --detach prints the id', { timeout: 120_000 }, async () => {
  await writeFile(join(dir, 'data.txt'), 'line 1\nå\n');
  const script = [
    'import os',
    'print(os.environ["A"], os.environ["B"])',
    'print(open("in/data.txt", encoding="utf-8").read(), end="")',
    'print(open("data.txt", encoding="utf-8").read(), end="")',
  ].join('\n');
  const { ctx, out } = testContext(await env(), { stdin: `${script}\n` });
  const status = await runCli(ctx, ['run', '-d', '-e', 'A=1', '--env', 'B=x=y', '--file', `in/data.txt=${join(dir, 'data.txt')}`, '--file', join(dir, 'data.txt'), '--python', '-']);
  assert.equal(status, 0, out.stderr);
  const id = out.stdout.trim();
  assert.match(id, ID);
  assert.equal(out.stdout, `${id}\n`, 'only the id on stdout');
  const final = await paddock.admin.waitFinal(id, 90_000);
  assert.deepEqual([final.kind, final.state], ['python', 'completed'], JSON.stringify(final));
  assert.equal(await paddock.admin.logs(id), '1 x=y\nline 1\nå\nline 1\nå\n');
});

test('a single command argument goes to the shell as it is', { timeout: 120_000 }, async () => {
  const { ctx, out } = testContext(await env());
  assert.equal(await runCli(ctx, ['run', 'echo $((6 * 7)) | wc -c']), 0, out.stderr);
  assert.equal(out.stdout.trim(), '3');
});

test('Ctrl-C during run cancels the execution and follows it to the end', { timeout: 120_000 }, async () => {
  const { ctx, out, interrupts } = testContext(await env());
  const running = runCli(ctx, ['run', '--', 'sh', '-c', 'echo working; sleep 100']);
  for (const deadline = Date.now() + 90_000; !out.stdout.includes('working'); await sleep(20)) {
    assert.ok(Date.now() < deadline, `no output from the execution:\n${out.stderr}`);
  }
  interrupts.emit('SIGINT');
  assert.equal(await running, 1);
  const id = idOf(out.stderr);
  // The output goes on to its end, where Paddock notes the cancel.
  assert.match(out.stdout, /^working\n(.*\n)*.*cancelled.*\n$/);
  assert.match(out.stderr, new RegExp(`paddock: cancelling ${id}`));
  assert.match(out.stderr, new RegExp(`paddock: execution ${id} was cancelled`));
  assert.equal((await paddock.admin.get(id)).state, 'cancelled');
});

test('API errors are printed from their body, with exit status 1', async () => {
  const missing = testContext(await env());
  assert.equal(await runCli(missing.ctx, ['status', '0000000000000000000000']), 1);
  assert.equal(missing.out.stderr, 'paddock: execution 0000000000000000000000 not found\n');

  const badToken = testContext({ ...(await env()), PADDOCK_TOKEN: 'not-a-token' });
  assert.equal(await runCli(badToken.ctx, ['ls']), 1);
  assert.match(badToken.out.stderr, /^paddock: .*token.*\n$/);
});

test('an unreachable API is named, with exit status 1', async () => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  const unreachable = { ...(await env()), PADDOCK_URL: `http://127.0.0.1:${port}` };
  const { ctx, out } = testContext(unreachable);
  assert.equal(await runCli(ctx, ['ls']), 1);
  assert.match(out.stderr, new RegExp(`^paddock: cannot reach Paddock at http://127\\.0\\.0\\.1:${port}: ECONNREFUSED`));
  const logs = testContext(unreachable);
  assert.equal(await runCli(logs.ctx, ['logs', '0000000000000000000000']), 1);
  assert.match(logs.out.stderr, /ECONNREFUSED/);
});

test('ls, status, cancel, logs and download', { timeout: 180_000 }, async () => {
  const done = testContext(await env());
  assert.equal(await runCli(done.ctx, ['run', '--', 'sh', '-c', 'echo all the output; echo kept > /workspace/result.txt']), 0, done.out.stderr);
  const id = idOf(done.out.stderr);

  const list = testContext(await env());
  assert.equal(await runCli(list.ctx, ['ls', '--state', 'completed', '-n', '50']), 0, list.out.stderr);
  assert.match(list.out.stdout, /^ID +STATE +KIND +EXIT +CREATED +COMMAND\n/);
  assert.match(list.out.stdout, new RegExp(`^${id} +completed +shell +0 +\\d+s ago +sh -c`, 'm'));

  const status = testContext(await env());
  assert.equal(await runCli(status.ctx, ['status', id]), 0, status.out.stderr);
  assert.match(status.out.stdout, new RegExp(`^ID:\\s+${id}$`, 'm'));
  assert.match(status.out.stdout, /^State:\s+completed$/m);

  const logs = testContext(await env());
  assert.equal(await runCli(logs.ctx, ['logs', id]), 0, logs.out.stderr);
  assert.equal(logs.out.stdout, 'all the output\n');

  const file = join(dir, 'out.zip');
  const download = testContext(await env());
  assert.equal(await runCli(download.ctx, ['download', id, '-o', file]), 0, download.out.stderr);
  assert.match(download.out.stdout, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(\\d+(\\.\\d)? [KM]?B\\)\\n$`));
  const zip = await readFile(file);
  assert.equal(zip.subarray(0, 4).toString('latin1'), 'PK\u0003\u0004');
  assert.ok(zip.includes('result.txt'), 'the workspace ZIP holds the file the command wrote');

  const detached = testContext(await env());
  assert.equal(await runCli(detached.ctx, ['run', '-d', '--', 'sleep', '100']), 0, detached.out.stderr);
  const sleeping = detached.out.stdout.trim();
  await paddock.admin.waitState(sleeping, 'executing', 90_000);
  const cancel = testContext(await env());
  assert.equal(await runCli(cancel.ctx, ['cancel', sleeping]), 0, cancel.out.stderr);
  assert.match(cancel.out.stdout, new RegExp(`^${sleeping} (executing|cancelled)\\n$`));
  assert.equal((await paddock.admin.waitFinal(sleeping, 60_000)).state, 'cancelled');

  const missing = testContext(await env());
  assert.equal(await runCli(missing.ctx, ['logs', '0000000000000000000000', '-f']), 1);
  assert.equal(missing.out.stderr, 'paddock: execution 0000000000000000000000 not found\n');
});

test('usage errors exit with status 2', async () => {
  for (const argv of [['nope'], ['run'], ['run', '--cpus', 'many', 'true'], ['status'], ['ls', 'extra'], ['run', '--network', 'host', 'x'], ['run', '-e', 'NOEQUALS', 'x']]) {
    const { ctx, out } = testContext(await env());
    assert.equal(await runCli(ctx, argv), 2, argv.join(' '));
    assert.match(out.stderr, /^paddock: .+\nRun 'paddock .*' for usage\.\n$/);
  }
});
