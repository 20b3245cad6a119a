// The `paddock` command line as a user runs it, against a whole Paddock: it finds the API and the admin
// token from PADDOCK_HOME and PADDOCK_PORT alone.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { startPaddock, type RunningPaddock } from '@paddock/testkit';
import { cli, spawnCli } from '../src/cli.js';
import { containersOf, waitFor } from '../src/index.js';

const run = promisify(execFile);
const ID = /^[0-9a-z]{22}$/;

let paddock: RunningPaddock;
let workDir: string;

before(async () => {
  paddock = await startPaddock();
  workDir = await mkdtemp(join(tmpdir(), 'paddock-cli-'));
});

after(async () => {
  await paddock?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

/** `run` prints the execution id as the first line on stderr. */
function idOf(stderr: string): string {
  const first = stderr.split('\n')[0] ?? '';
  assert.match(first, ID, `stderr starts with the execution id:\n${stderr}`);
  return first;
}

test('run streams the output and exits with the command status; logs and logs -f print it again', async () => {
  const r = await cli(paddock, ['run', '--', 'sh', '-c', 'echo hi; exit 4']);
  assert.equal(r.stdout, 'hi\n');
  assert.equal(r.code, 4, r.stderr);
  const id = idOf(r.stderr);
  assert.match(r.stderr, /exited with code 4/);
  const final = await paddock.admin.get(id);
  assert.equal(final.state, 'failed');
  assert.equal(final.exitCode, 4);

  const logs = await cli(paddock, ['logs', id]);
  assert.equal(logs.code, 0, logs.stderr);
  assert.equal(logs.stdout, 'hi\n');
  const followed = await cli(paddock, ['logs', '-f', id]);
  assert.equal(followed.code, 0, followed.stderr);
  assert.equal(followed.stdout, 'hi\n');
});

test('run --python - runs the script given on stdin', async () => {
  const script = 'squares = [n * n for n in range(1, 11)]\nprint(f"sum={sum(squares)}")\n';
  const r = await cli(paddock, ['run', '--python', '-'], { input: script });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'sum=385\n');
  assert.equal((await paddock.admin.get(idOf(r.stderr))).kind, 'python');
});

test('run -d prints the id; ls lists it, status shows it executing, cancel ends it cancelled', async () => {
  const started = await cli(paddock, ['run', '-d', '--', 'sleep', '60']);
  assert.equal(started.code, 0, started.stderr);
  const id = started.stdout.trim();
  assert.match(id, ID);
  assert.equal(started.stdout, `${id}\n`, 'only the id on stdout');

  const ls = await cli(paddock, ['ls']);
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, /^ID\s+STATE/);
  assert.ok(ls.stdout.split('\n').some((line) => line.startsWith(`${id} `)), ls.stdout);

  await paddock.admin.waitState(id, 'executing', 90_000);
  const status = await cli(paddock, ['status', id]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, new RegExp(`^ID:\\s+${id}$`, 'm'));
  assert.match(status.stdout, /^State:\s+executing$/m);
  assert.match(status.stdout, /^Command:\s+sleep 60$/m);

  const cancel = await cli(paddock, ['cancel', id]);
  assert.equal(cancel.code, 0, cancel.stderr);
  assert.match(cancel.stdout, new RegExp(`^${id} `));
  assert.equal((await paddock.admin.waitFinal(id, 30_000)).state, 'cancelled');
  const after = await cli(paddock, ['status', id]);
  assert.match(after.stdout, /^State:\s+cancelled$/m);
  assert.deepEqual(await containersOf(id), []);
});

test('download writes a valid zip holding the files the job wrote', async () => {
  const r = await cli(paddock, ['run', '--', 'sh', '-c', 'mkdir -p out && echo payload-42 > out/result.txt']);
  assert.equal(r.code, 0, r.stderr);
  const id = idOf(r.stderr);
  const file = join(workDir, 'artifacts.zip');
  const d = await cli(paddock, ['download', id, '-o', file]);
  assert.equal(d.code, 0, d.stderr);
  assert.match(d.stdout, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(`));
  assert.ok((await stat(file)).size > 0);
  const { stdout: names } = await run('unzip', ['-Z1', file]);
  assert.ok(names.split('\n').includes('out/result.txt'), names);
  assert.equal((await run('unzip', ['-p', file, 'out/result.txt'])).stdout, 'payload-42\n');
  await assert.rejects(stat(`${file}.part`), 'no partial file is left behind');
});

test('an unknown id is a clear error with a non-zero status', async () => {
  const unknown = '0000000000000000000000';
  for (const args of [['status', unknown], ['logs', unknown], ['cancel', unknown], ['download', unknown, '-o', join(workDir, 'x.zip')]]) {
    const r = await cli(paddock, args);
    assert.notEqual(r.code, 0, `${args[0]}: ${r.stdout}`);
    assert.match(r.stderr, new RegExp(`^paddock: .*${unknown}.*not found`, 'm'), `${args[0]}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /unexpected error|\n\s+at /, `${args[0]}: no stack trace`);
  }
});

test('paddock with no arguments prints the usage and exits 2', async () => {
  const r = await cli(paddock, []);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^Usage: paddock COMMAND/);
  for (const command of ['run', 'ls', 'status', 'logs', 'cancel', 'download']) assert.match(r.stderr, new RegExp(`^  ${command} `, 'm'));
});

test('Ctrl-C during run cancels the execution and the CLI exits non-zero', async () => {
  const running = spawnCli(paddock, ['run', '--', 'sleep', '60']);
  const id = await waitFor('the id on stderr', async () => {
    const line = running.stderr().split('\n')[0];
    return line !== undefined && ID.test(line) && running.stderr().includes('\n') ? line : undefined;
  }, 30_000, 20);
  running.child.kill('SIGINT');
  const r = await running.done;
  assert.notEqual(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`cancelling ${id}`));
  const final = await paddock.admin.waitFinal(id, 30_000);
  assert.equal(final.state, 'cancelled', `the execution ended ${final.state} (${final.error})`);
  assert.deepEqual(await containersOf(id), []);
});

test('exec runs a command in a running service; ssh joins its tmux session or shows how to', async () => {
  const { id } = await paddock.admin.submit({ kind: 'shell', command: 'echo up', service: true, network: 'bridge' });
  await paddock.admin.waitState(id, 'executing');
  await waitFor('the service to idle', async () => /idling/.test(await paddock.admin.logs(id)));
  try {
    const ran = await cli(paddock, ['exec', id, '--', 'sh', '-c', 'echo from-exec; echo oops >&2; exit 5']);
    assert.equal(ran.code, 5);
    assert.equal(ran.stdout, 'from-exec\n');
    assert.equal(ran.stderr, 'oops\n');
    const piped = await cli(paddock, ['exec', '-i', id, '--', 'wc', '-c'], { input: 'twelve bytes' });
    assert.equal(piped.code, 0);
    assert.equal(piped.stdout.trim(), '12');

    const shown = await cli(paddock, ['ssh', id, '--show']);
    assert.equal(shown.code, 0);
    assert.equal(
      shown.stdout.split('\n')[0],
      `ssh -o ProxyCommand='npx paddock tunnel ${id} 2222' -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null agent@${id}`,
    );
    assert.match(shown.stdout, /\npassword: \S{20,}\n$/);

    // Once tmux has drawn its status line ([agent] …), type a command, then detach (Ctrl-b d): the session ends.
    const session = spawnCli(paddock, ['ssh', id], { keepStdinOpen: true });
    await waitFor('tmux to draw', async () => session.stdout().includes('[agent]'), 15_000);
    session.child.stdin!.write('echo via-ssh-$((2+3))\r');
    await waitFor('the command to run', async () => session.stdout().includes('via-ssh-5'), 15_000);
    session.child.stdin!.write('\x02d');
    const ended = await session.done;
    assert.equal(ended.code, 0, ended.stderr);
  } finally {
    await paddock.admin.request('POST', `/api/v1/executions/${id}/cancel`);
  }
});
