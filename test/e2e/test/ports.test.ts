// Ports of a running instance, end to end under `paddock up`: a server started inside appears in the API
// and in its event stream within a blink (portdetect), `paddock ports` lists it, `paddock port-forward`
// carries HTTP and SSH to it (through the API's tunnel route and through the WS-TCP bridge), share links
// come back in their documented shape, and another user is told 404 / "no running instance".
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Client } from 'ssh2';
import { startPaddock, type ApiClient, type RunningPaddock } from '@paddock/testkit';
import { waitFor } from '../src/index.js';

const CLI_MAIN = fileURLToPath(new URL('../../../../cli/dist/src/main.js', import.meta.url));

let paddock: RunningPaddock;
let other: ApiClient;
/** A service with no network at all, where the tests start servers. */
let serviceId: string;

before(async () => {
  paddock = await startPaddock();
  const r = await paddock.admin.request('POST', '/api/v1/users', { name: 'frank' });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  other = paddock.admin.withToken(r.body.token);
  const created = await paddock.admin.submit({
    kind: 'shell',
    command: 'echo hello-through-port-forward > /workspace/greeting.txt; echo service-ready',
    service: true,
    network: 'none',
  });
  serviceId = created.id;
  await paddock.admin.waitState(serviceId, 'executing');
  await waitFor('the service to idle', async () => /idling/.test(await paddock.admin.logs(serviceId)));
});

after(async () => {
  await paddock?.stop();
});

/** Starts `python3 -m http.server PORT` inside the service, detached, through the exec API. */
async function startHttpServer(port: number): Promise<void> {
  const r = await paddock.admin.request('POST', `/api/v1/instances/${serviceId}/exec`, {
    cmd: ['sh', '-c', `setsid python3 -m http.server --directory /workspace ${port} >/dev/null 2>&1 < /dev/null &`],
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.match(String(r.body), /"exitCode":0/);
}

/** One Server-Sent Event. */
interface Sse {
  event: string;
  data: { ports?: { port: number; address: string; url: string | null }[]; port?: number; reason?: string };
}

/** Follows the ports event stream with the admin's token; `next(match)` resolves with the first event that matches. */
async function followPorts(id: string): Promise<{ next(match: (e: Sse) => boolean, timeoutMs?: number): Promise<Sse>; close(): void }> {
  const abort = new AbortController();
  const res = await fetch(`${paddock.url}/api/v1/instances/${id}/ports/events`, { headers: { authorization: `Bearer ${paddock.admin.token}` }, signal: abort.signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const seen: Sse[] = [];
  const wakers = new Set<() => void>();
  void (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body!) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      for (let i = buffer.indexOf('\n\n'); i !== -1; i = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        if (block.startsWith(':')) continue;
        seen.push({ event: /^event: (.*)$/m.exec(block)?.[1] ?? '', data: JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? '{}') as Sse['data'] });
        for (const wake of wakers) wake();
      }
    }
  })().catch(() => {});
  return {
    next: (match, timeoutMs = 5_000) =>
      new Promise<Sse>((resolve, reject) => {
        const look = () => {
          const found = seen.find(match);
          if (!found) return;
          wakers.delete(look);
          clearTimeout(timer);
          resolve(found);
        };
        const timer = setTimeout(() => {
          wakers.delete(look);
          reject(new Error(`no matching event within ${timeoutMs} ms; seen: ${JSON.stringify(seen)}`));
        }, timeoutMs);
        wakers.add(look);
        look();
      }),
    close: () => abort.abort(),
  };
}

interface Cli {
  stdout(): string;
  stderr(): string;
  interrupt(): void;
  readonly done: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** The real `paddock` CLI against this Paddock, as its admin unless `env` says otherwise. */
function paddockCli(args: readonly string[], env: Record<string, string> = {}): Cli {
  const child = spawn(process.execPath, [CLI_MAIN, ...args], {
    env: { ...process.env, PADDOCK_HOME: paddock.home, PADDOCK_URL: paddock.url, PADDOCK_TOKEN: paddock.admin.token, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { stdout: () => stdout, stderr: () => stderr, interrupt: () => child.kill('SIGINT'), done };
}

/** Starts `paddock port-forward ID PORT:0` and resolves with the local port it printed. */
async function portForward(remote: number, env: Record<string, string> = {}): Promise<{ cli: Cli; local: number }> {
  const cli = paddockCli(['port-forward', serviceId, `${remote}:0`], env);
  const line = await waitFor('port-forward to listen', async () => /Forwarding from 127\.0\.0\.1:(\d+) -> (\S+):(\d+)/.exec(cli.stdout()) ?? undefined, 15_000).catch((err: Error) => {
    cli.interrupt();
    throw new Error(`${err.message}; stderr: ${cli.stderr()}`);
  });
  assert.equal(line[2], serviceId);
  assert.equal(line[3], String(remote));
  return { cli, local: Number(line[1]) };
}

test('a server started in an instance appears in GET /ports and in the event stream within two seconds', async () => {
  const events = await followPorts(serviceId);
  try {
    const first = await events.next((e) => e.event === 'ports');
    assert.ok(!first.data.ports?.some((p) => p.port === 8000), 'not listening yet');
    const startedAtMs = Date.now();
    await startHttpServer(8000);
    const opened = await events.next((e) => e.event === 'opened' && e.data.port === 8000, 5_000);
    const elapsedMs = Date.now() - startedAtMs;
    assert.ok(elapsedMs < 2_000, `announced ${elapsedMs} ms after the server was started`);
    assert.ok(opened.data.ports?.some((p) => p.port === 8000));
  } finally {
    events.close();
  }
  const r = await paddock.admin.request('GET', `/api/v1/instances/${serviceId}/ports`);
  assert.equal(r.status, 200);
  const port = (r.body as { port: number; protocol: string; address: string; url: string; visibility: string; openedAt: string }[]).find((p) => p.port === 8000);
  assert.ok(port, JSON.stringify(r.body));
  assert.equal(port.protocol, 'tcp');
  assert.equal(port.address, '0.0.0.0');
  assert.equal(port.visibility, 'private');
  assert.match(port.url, new RegExp(`^http://${serviceId}-8000\\.localhost(:\\d+)?/$`));
  assert.ok(Math.abs(Date.parse(port.openedAt) - Date.now()) < 60_000);

  const listed = await paddockCli(['ports', serviceId]).done;
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /^PORT\s+ADDRESS\s+VISIBILITY\s+URL\s+OPENED\n/);
  assert.match(listed.stdout, new RegExp(`^8000\\s+0\\.0\\.0\\.0\\s+private\\s+http://${serviceId}-8000\\.localhost\\S*\\s+\\d+s ago$`, 'm'));
  const json = await paddockCli(['ports', serviceId, '--json']).done;
  assert.equal(json.code, 0, json.stderr);
  assert.ok((JSON.parse(json.stdout) as { port: number }[]).some((p) => p.port === 8000));
});

test('paddock ports --watch prints each port that opens, until Ctrl-C', async () => {
  const watch = paddockCli(['ports', serviceId, '--watch', '--json']);
  await waitFor('the first state', async () => watch.stdout().includes('"event":"ports"'), 15_000);
  await startHttpServer(8001);
  await waitFor('port 8001 to be announced', async () => watch.stdout().split('\n').some((l) => l.includes('"event":"opened"') && l.includes('"port":8001')), 5_000);
  watch.interrupt();
  const { code } = await watch.done;
  assert.equal(code, 0);
});

test('paddock port-forward carries HTTP requests to the server inside, each connection its own tunnel, through the API and the bridge', async () => {
  await waitFor('the server on 8000', async () => ((await paddock.admin.request('GET', `/api/v1/instances/${serviceId}/ports`)).body as { port: number }[]).some((p) => p.port === 8000), 10_000);
  const bridgePort = paddock.env['PADDOCK_BRIDGE_PORT'];
  assert.ok(bridgePort, 'paddock up runs the WS-TCP bridge');
  const routes: Record<string, string>[] = [{}, { PADDOCK_BRIDGE_URL: `http://127.0.0.1:${bridgePort}` }];
  for (const env of routes) {
    const { cli, local } = await portForward(8000, env);
    try {
      for (let i = 0; i < 3; i++) {
        const r = await fetch(`http://127.0.0.1:${local}/greeting.txt`, { headers: { connection: 'close' } });
        assert.equal(r.status, 200);
        assert.equal(await r.text(), 'hello-through-port-forward\n');
      }
    } finally {
      cli.interrupt();
    }
    const { code, stderr } = await cli.done;
    assert.equal(code, 0, stderr);
  }
});

test('ssh to the instance through paddock port-forward on 2222, with the password from GET /ssh', async () => {
  const access = await paddock.admin.request('GET', `/api/v1/instances/${serviceId}/ssh`);
  assert.equal(access.status, 200, JSON.stringify(access.body));
  const { cli, local } = await portForward(2222);
  try {
    const out = await new Promise<string>((resolve, reject) => {
      const client = new Client();
      client
        .on('ready', () => {
          client.exec('cat /workspace/greeting.txt; id -u', (err, stream) => {
            if (err) return reject(err);
            let text = '';
            stream.on('data', (d: Buffer) => (text += d.toString()));
            stream.on('close', () => {
              client.end();
              resolve(text);
            });
          });
        })
        .on('error', reject)
        .connect({ host: '127.0.0.1', port: local, username: access.body.username, password: access.body.password, readyTimeout: 15_000 });
    });
    assert.equal(out, 'hello-through-port-forward\n1000\n');
  } finally {
    cli.interrupt();
  }
  assert.equal((await cli.done).code, 0);
});

test('port-forward says so when nothing listens on the port, and when the instance is not running or not the caller\'s', async () => {
  const { cli, local } = await portForward(9999);
  try {
    assert.match(cli.stderr(), new RegExp(`nothing listens on port 9999 in ${serviceId} yet`));
    const refused = await fetch(`http://127.0.0.1:${local}/`).then(
      () => 'answered',
      () => 'refused',
    );
    assert.equal(refused, 'refused', 'the local connection is closed');
    await waitFor('the reason', async () => new RegExp(`could not reach port 9999 of ${serviceId}: .*nothing listens on port 9999`).test(cli.stderr()), 5_000);
  } finally {
    cli.interrupt();
  }
  await cli.done;

  const unknown = await paddockCli(['port-forward', 'nosuchinstance', '8000']).done;
  assert.equal(unknown.code, 1);
  assert.equal(unknown.stderr, 'paddock: no running instance nosuchinstance\n');
  const notTheirs = await paddockCli(['port-forward', serviceId, '8000'], { PADDOCK_TOKEN: other.token }).done;
  assert.equal(notTheirs.code, 1);
  assert.equal(notTheirs.stderr, `paddock: no running instance ${serviceId}\n`);
  const finished = await paddock.admin.submit({ kind: 'shell', command: 'true' });
  await paddock.admin.waitFinal(finished.id);
  const ended = await paddockCli(['port-forward', finished.id, '8000']).done;
  assert.equal(ended.code, 1);
  assert.equal(ended.stderr, `paddock: no running instance ${finished.id}: execution ${finished.id} is completed\n`);
});

test('a share link comes back as the port\'s URL with a signed token and its expiry', async () => {
  const before = Date.now();
  const r = await paddock.admin.request('POST', `/api/v1/instances/${serviceId}/ports/8000/share`, { expiresInSeconds: 120 });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.deepEqual(Object.keys(r.body).sort(), ['expiresAt', 'url']);
  assert.match(r.body.url, new RegExp(`^http://${serviceId}-8000\\.localhost(:\\d+)?/\\?paddock_share=v1\\.\\d+\\.[A-Za-z0-9_-]+$`));
  const expiresAtMs = Date.parse(r.body.expiresAt);
  assert.ok(expiresAtMs >= before + 119_000 && expiresAtMs <= Date.now() + 121_000, r.body.expiresAt);
  const visibility = await paddock.admin.request('PATCH', `/api/v1/instances/${serviceId}/ports/8000`, { visibility: 'public' });
  assert.deepEqual(visibility.body, { port: 8000, visibility: 'public' });
  const listed = await paddock.admin.request('GET', `/api/v1/instances/${serviceId}/ports`);
  assert.equal((listed.body as { port: number; visibility: string }[]).find((p) => p.port === 8000)?.visibility, 'public');
});

test('another user is told 404 on every ports route of the instance', async () => {
  for (const [method, path, body] of [
    ['GET', `/api/v1/instances/${serviceId}/ports`, undefined],
    ['GET', `/api/v1/instances/${serviceId}/ports/events`, undefined],
    ['PATCH', `/api/v1/instances/${serviceId}/ports/8000`, { visibility: 'private' }],
    ['POST', `/api/v1/instances/${serviceId}/ports/8000/share`, {}],
  ] as const) {
    const r = await other.request(method, path, body);
    assert.equal(r.status, 404, `${method} ${path}`);
  }
  const listed = await paddockCli(['ports', serviceId], { PADDOCK_TOKEN: other.token }).done;
  assert.equal(listed.code, 1);
  assert.match(listed.stderr, new RegExp(`execution ${serviceId} not found`));
});
