import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCli } from '../src/cli.js';
import type { Execution } from '../src/execution.js';
import { testContext } from './testContext.js';

// A local server that answers like Paddock's REST API, one handler per test.
type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;
let handler: Handler;
let server: Server;
let url: string;
let dir: string;
const seen: { method: string; url: string; auth: string | undefined; body: string }[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-run-'));
  server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', auth: req.headers.authorization, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

function env() {
  return { PADDOCK_URL: url, PADDOCK_TOKEN: 'tok-123', PADDOCK_HOME: dir };
}

function execution(overrides: Partial<Execution>): Execution {
  return {
    id: 'ex_1',
    owner: 'admin',
    kind: 'shell',
    state: 'queued',
    exitCode: null,
    error: null,
    image: 'paddock/base:latest',
    command: 'true',
    createdAt: new Date().toISOString(),
    startedAt: null,
    finishedAt: null,
    timeoutS: 600,
    resources: { cpus: 1, memoryMb: 512 },
    network: 'none',
    ...overrides,
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

test('run streams the output and exits with the command status', async () => {
  seen.length = 0;
  handler = (req, res) => {
    if (req.method === 'POST' && req.url === '/api/v1/executions') return json(res, 201, execution({}));
    if (req.url === '/api/v1/executions/ex_1/logs?follow=true') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('hello\n');
      setTimeout(() => res.end('world\n'), 20);
      return;
    }
    if (req.url === '/api/v1/executions/ex_1') return json(res, 200, execution({ state: 'completed', exitCode: 7 }));
    json(res, 404, { error: { code: 'not_found', message: `no route ${req.url}` } });
  };
  const { ctx, out } = testContext(env());
  const status = await runCli(ctx, ['run', '--image', 'img', '--cpus', '0.5', '--memory', '256', '--timeout', '30', '--network', 'bridge', '--', 'echo', 'a b']);
  assert.equal(status, 7);
  assert.equal(out.stdout, 'hello\nworld\n');
  assert.equal(out.stderr, 'ex_1\n');
  assert.deepEqual(JSON.parse(seen[0]?.body ?? ''), {
    kind: 'shell',
    command: "echo 'a b'",
    image: 'img',
    resources: { cpus: 0.5, memoryMb: 256 },
    timeoutS: 30,
    network: 'bridge',
  });
  assert.ok(seen.every((r) => r.auth === 'Bearer tok-123'));
});

test('run sends env, files and a python script from stdin; --detach prints the id', async () => {
  seen.length = 0;
  handler = (_req, res) => json(res, 201, execution({ id: 'ex_9', kind: 'python' }));
  await writeFile(join(dir, 'data.txt'), 'line 1\nå\n');
  const { ctx, out } = testContext(env(), { stdin: 'print("hi")\n' });
  const status = await runCli(ctx, ['run', '-d', '-e', 'A=1', '--env', 'B=x=y', '--file', `in/data.txt=${join(dir, 'data.txt')}`, '--file', join(dir, 'data.txt'), '--python', '-']);
  assert.equal(status, 0);
  assert.equal(out.stdout, 'ex_9\n');
  assert.deepEqual(JSON.parse(seen[0]?.body ?? ''), {
    kind: 'python',
    script: 'print("hi")\n',
    env: { A: '1', B: 'x=y' },
    files: { 'in/data.txt': 'line 1\nå\n', 'data.txt': 'line 1\nå\n' },
  });
  assert.equal(seen.length, 1);
});

test('a single command argument goes to the shell as it is', async () => {
  seen.length = 0;
  handler = (_req, res) => json(res, 201, execution({}));
  const { ctx } = testContext(env());
  assert.equal(await runCli(ctx, ['run', '-d', 'echo $HOME | wc -c']), 0);
  assert.equal(JSON.parse(seen[0]?.body ?? '').command, 'echo $HOME | wc -c');
});

test('Ctrl-C during run cancels the execution and follows it to the end', async () => {
  seen.length = 0;
  let logs: ServerResponse | undefined;
  handler = (req, res) => {
    if (req.method === 'POST' && req.url === '/api/v1/executions') return json(res, 201, execution({}));
    if (req.url?.startsWith('/api/v1/executions/ex_1/logs')) {
      logs = res;
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('working\n');
      return;
    }
    if (req.method === 'POST' && req.url === '/api/v1/executions/ex_1/cancel') {
      json(res, 202, execution({ state: 'executing' }));
      logs?.end('terminated\n');
      return;
    }
    json(res, 200, execution({ state: 'cancelled', error: 'cancelled by admin' }));
  };
  const { ctx, out, interrupts } = testContext(env());
  const running = runCli(ctx, ['run', 'sleep', '100']);
  while (!out.stdout.includes('working')) await sleep(5);
  interrupts.emit('SIGINT');
  assert.equal(await running, 1);
  assert.equal(out.stdout, 'working\nterminated\n');
  assert.match(out.stderr, /cancelling ex_1/);
  assert.match(out.stderr, /paddock: execution ex_1 was cancelled: cancelled by admin/);
  assert.ok(seen.some((r) => r.method === 'POST' && r.url === '/api/v1/executions/ex_1/cancel'));
});

test('API errors are printed from their body, with exit status 1', async () => {
  handler = (_req, res) => json(res, 400, { error: { code: 'invalid_request', message: 'image nope not found' } });
  const { ctx, out } = testContext(env());
  assert.equal(await runCli(ctx, ['run', 'true']), 1);
  assert.equal(out.stderr, 'paddock: image nope not found\n');

  handler = (_req, res) => res.writeHead(502, 'Bad Gateway').end('upstream down');
  const second = testContext(env());
  assert.equal(await runCli(second.ctx, ['status', 'ex_1']), 1);
  assert.equal(second.out.stderr, 'paddock: HTTP 502 Bad Gateway: upstream down\n');
});

test('an unreachable API is named, with exit status 1', async () => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  const { ctx, out } = testContext({ ...env(), PADDOCK_URL: `http://127.0.0.1:${port}` });
  assert.equal(await runCli(ctx, ['ls']), 1);
  assert.match(out.stderr, new RegExp(`^paddock: cannot reach Paddock at http://127\\.0\\.0\\.1:${port}: ECONNREFUSED`));
  const logs = testContext({ ...env(), PADDOCK_URL: `http://127.0.0.1:${port}` });
  assert.equal(await runCli(logs.ctx, ['logs', 'ex_1']), 1);
  assert.match(logs.out.stderr, /ECONNREFUSED/);
});

test('ls, cancel, logs and download', async () => {
  seen.length = 0;
  handler = (req, res) => {
    if (req.url === '/api/v1/executions?state=completed&limit=5') return json(res, 200, { items: [execution({ state: 'completed', exitCode: 0 })], nextCursor: null });
    if (req.url === '/api/v1/executions/ex_1/cancel') return json(res, 202, execution({ state: 'cancelled' }));
    if (req.url === '/api/v1/executions/ex_1/logs') return res.writeHead(200).end('all the output\n');
    if (req.url === '/api/v1/executions/ex_1/artifacts.zip') return res.writeHead(200, { 'content-type': 'application/zip' }).end(Buffer.alloc(2048, 7));
    json(res, 404, { error: { code: 'not_found', message: 'execution ex_2 not found' } });
  };
  const list = testContext(env());
  assert.equal(await runCli(list.ctx, ['ls', '--state', 'completed', '-n', '5']), 0);
  assert.match(list.out.stdout, /^ID +STATE +KIND +EXIT +CREATED +COMMAND\nex_1 +completed +shell +0 +\d+s ago +true\n$/);

  const cancel = testContext(env());
  assert.equal(await runCli(cancel.ctx, ['cancel', 'ex_1']), 0);
  assert.equal(cancel.out.stdout, 'ex_1 cancelled\n');

  const logs = testContext(env());
  assert.equal(await runCli(logs.ctx, ['logs', 'ex_1']), 0);
  assert.equal(logs.out.stdout, 'all the output\n');

  const missing = testContext(env());
  assert.equal(await runCli(missing.ctx, ['logs', 'ex_2', '-f']), 1);
  assert.equal(missing.out.stderr, 'paddock: execution ex_2 not found\n');

  const file = join(dir, 'out.zip');
  const download = testContext(env());
  assert.equal(await runCli(download.ctx, ['download', 'ex_1', '-o', file]), 0);
  assert.equal(download.out.stdout, `${file} (2.0 KB)\n`);
  assert.deepEqual(await readFile(file), Buffer.alloc(2048, 7));
});

test('usage errors exit with status 2', async () => {
  for (const argv of [['nope'], ['run'], ['run', '--cpus', 'many', 'true'], ['status'], ['ls', 'extra'], ['run', '--network', 'host', 'x'], ['run', '-e', 'NOEQUALS', 'x']]) {
    const { ctx, out } = testContext(env());
    assert.equal(await runCli(ctx, argv), 2, argv.join(' '));
    assert.match(out.stderr, /^paddock: .+\nRun 'paddock .*' for usage\.\n$/);
  }
});
