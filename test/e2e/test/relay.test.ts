// The relay through the gateway: the WebSocket tunnel to any port of an instance (who may open it, and a
// server bound to 127.0.0.1 inside an instance with no network), the terminal and OpenSSH through it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { startPaddock, type ApiClient, type RunningPaddock } from '@paddock/testkit';
import { cli } from '../src/cli.js';
import { waitFor } from '../src/index.js';

const REPO = fileURLToPath(new URL('../../../../', import.meta.url));

let paddock: RunningPaddock;
let other: ApiClient;
/** A service with no network at all, serving HTTP on its own loopback only. */
let serviceId: string;

before(async () => {
  paddock = await startPaddock();
  const r = await paddock.admin.request('POST', '/api/v1/users', { name: 'erin' });
  other = paddock.admin.withToken(r.body.token);
  const server = 'python3 -m http.server --bind 127.0.0.1 --directory /workspace 8123';
  const created = await paddock.admin.submit({
    kind: 'shell',
    command: `echo hello-through-the-relay > /workspace/greeting.txt; setsid ${server} >/dev/null 2>&1 & echo service-ready`,
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

const wsUrl = (path: string) => paddock.url.replace(/^http/, 'ws') + path;
const tunnelPath = (id: string, port: string | number) => `/api/v1/instances/${id}/tunnel?port=${port}`;

/** Opens a WebSocket; rejects with `HTTP <status>: <message>` when the gateway refuses the upgrade. */
function openSocket(path: string, token: string | undefined): Promise<WebSocket> {
  const ws = new WebSocket(wsUrl(path), { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => reject(new Error(`HTTP ${res.statusCode}: ${body}`)));
    });
    ws.once('error', reject);
  });
}

/** Sends `request` through a tunnel and collects what comes back until the gateway closes the socket. */
async function throughTunnel(path: string, request: string): Promise<{ text: string; code: number }> {
  const ws = await openSocket(path, paddock.admin.token);
  const chunks: Buffer[] = [];
  ws.on('message', (d: Buffer, binary: boolean) => {
    assert.ok(binary, 'bytes from inside come as binary frames');
    chunks.push(d);
  });
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.send(Buffer.from(request));
  const code = await closed;
  return { text: Buffer.concat(chunks).toString('utf8'), code };
}

test('the tunnel route refuses: no token 401, another user 404, a bad port 400, nothing listening 409', async () => {
  await assert.rejects(openSocket(tunnelPath(serviceId, 8123), undefined), /^Error: HTTP 401/);
  await assert.rejects(openSocket(tunnelPath(serviceId, 8123), 'not-a-token'), /^Error: HTTP 401/);
  await assert.rejects(openSocket(tunnelPath(serviceId, 8123), other.token), /^Error: HTTP 404/);
  for (const port of ['0', '65536', 'ssh', '-1', '']) {
    await assert.rejects(openSocket(tunnelPath(serviceId, port), paddock.admin.token), /^Error: HTTP 400/, `port "${port}"`);
  }
  await assert.rejects(openSocket(`/api/v1/instances/${serviceId}/tunnel`, paddock.admin.token), /^Error: HTTP 400/, 'no port');
  await assert.rejects(
    openSocket(tunnelPath(serviceId, 9), paddock.admin.token),
    (err: Error) => err.message.startsWith('HTTP 409') && err.message.includes(`nothing listens on port 9 in execution ${serviceId}`),
  );
  await assert.rejects(openSocket(tunnelPath('00000000-0000-4000-8000-000000000000', 8123), paddock.admin.token), /^Error: HTTP 404/);
});

test('a server bound to 127.0.0.1 inside an instance with no network is reached through the tunnel', async () => {
  const { text, code } = await throughTunnel(tunnelPath(serviceId, 8123), 'GET /greeting.txt HTTP/1.0\r\nHost: x\r\n\r\n');
  assert.match(text, /^HTTP\/1\.0 200 OK\r\n/);
  assert.match(text, /\r\n\r\nhello-through-the-relay\n$/);
  assert.equal(code, 1000, 'the server closing its side closes the socket normally');
});

test('the terminal joins a service that has no network', async () => {
  const ws = await openSocket(`/terminal/${serviceId}`, paddock.admin.token);
  let screen = '';
  ws.on('message', (d: Buffer) => (screen += d.toString('utf8')));
  try {
    await waitFor('the terminal to attach', async () => screen.length > 0, 15_000);
    ws.send(Buffer.from('echo joined-$((6*7))\r'));
    await waitFor('the typed command to run', async () => screen.includes('joined-42'), 15_000);
  } finally {
    ws.close();
  }
});

test('`paddock ssh --show` prints an OpenSSH command that logs in through `paddock tunnel`', async () => {
  const shown = await cli(paddock, ['ssh', serviceId, '--show']);
  assert.equal(shown.code, 0, shown.stderr);
  const [command, passwordLine] = shown.stdout.trim().split('\n');
  assert.match(command!, new RegExp(`^ssh -o ProxyCommand='npx paddock tunnel ${serviceId} 2222' .* agent@${serviceId}$`));
  const password = /^password: (\S+)$/.exec(passwordLine!)?.[1];
  assert.ok(password);

  // OpenSSH asks the password of SSH_ASKPASS when told to; the ProxyCommand runs the real CLI.
  const dir = await mkdtemp(join(tmpdir(), 'paddock-ssh-'));
  try {
    const askpass = join(dir, 'askpass');
    await writeFile(askpass, `#!/bin/sh\necho '${password}'\n`);
    await chmod(askpass, 0o700);
    const env: NodeJS.ProcessEnv = { ...process.env, PADDOCK_HOME: paddock.home, PADDOCK_PORT: new URL(paddock.url).port, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force' };
    delete env['PADDOCK_TOKEN'];
    delete env['PADDOCK_URL'];
    const out = await new Promise<string>((resolve, reject) =>
      execFile('sh', ['-c', `${command} -o ConnectTimeout=20 'id -un; echo $((6*7)); tmux has-session -t agent && echo tmux-there'`], { cwd: REPO, env, timeout: 60_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
      ),
    );
    assert.equal(out, 'agent\n42\ntmux-there\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('`paddock tunnel` pipes stdin and stdout to a port inside, and says why when it cannot', async () => {
  const r = await cli(paddock, ['tunnel', serviceId, '8123'], { input: 'GET /greeting.txt HTTP/1.0\r\n\r\n' });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^HTTP\/1\.0 200 OK\r\n[\s\S]*hello-through-the-relay\n$/);

  const refused = await cli(paddock, ['tunnel', serviceId, '9']);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, new RegExp(`nothing listens on port 9 in execution ${serviceId}`));
});
