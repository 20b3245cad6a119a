// Watching and joining a running instance: SSH (through the gateway's tunnel: no host port leads to an
// instance), the WebSocket terminal (several viewers), exec, tickets.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { startPaddock, type ApiClient, type RunningPaddock } from '@paddock/testkit';
import { sshRun, waitFor } from '../src/index.js';

let paddock: RunningPaddock;
let other: ApiClient;
let serviceId: string;

before(async () => {
  paddock = await startPaddock({ env: { PADDOCK_TERMINAL_TICKET_TTL_MS: '2000' } });
  const r = await paddock.admin.request('POST', '/api/v1/users', { name: 'dave' });
  other = paddock.admin.withToken(r.body.token);
  const created = await paddock.admin.submit({ kind: 'shell', command: 'echo service-ready', service: true, network: 'bridge' });
  serviceId = created.id;
  await paddock.admin.waitState(serviceId, 'executing');
  await waitFor('the service to idle', async () => /idling/.test(await paddock.admin.logs(serviceId)));
});

after(async () => {
  await paddock?.stop();
});

const wsUrl = (path: string) => paddock.url.replace(/^http/, 'ws') + path;

/** A terminal viewer: everything the socket sent so far, as text. */
async function openTerminal(url: string, headers: Record<string, string> = {}): Promise<{ ws: WebSocket; screen(): string; close(): Promise<void> }> {
  const ws = new WebSocket(url, { headers });
  let text = '';
  ws.on('message', (d: Buffer) => (text += d.toString('utf8')));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
  return {
    ws,
    screen: () => text,
    close: () =>
      new Promise((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve();
        ws.once('close', () => resolve());
        ws.close();
      }),
  };
}

test('the owner gets SSH details; SSH through the tunnel lands as the agent user beside tmux session agent', async () => {
  const r = await paddock.admin.request('GET', `/api/v1/instances/${serviceId}/ssh`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.tunnelPath, `/api/v1/instances/${serviceId}/tunnel?port=2222`);
  assert.equal(r.body.host, undefined, 'no host address: no host port leads to the instance');
  assert.equal(r.body.port, undefined);
  assert.equal(r.body.username, 'agent');
  assert.ok(r.body.password.length >= 20);
  const out = await sshRun(paddock.url, paddock.admin.token, r.body, 'id -un; tmux list-sessions -F "#{session_name}"; cat /workspace/../opt/paddock/run/secrets/ssh-password 2>&1 || true');
  assert.match(out, /^agent\nagent\n/);
  assert.match(out, /No such file/, 'the password file is gone once sshd has it');
  assert.doesNotMatch(await paddock.admin.logs(serviceId), new RegExp(r.body.password), 'the password is never in the log');
});

test('two viewers share one screen; typing in one shows in both; resize reaches tmux; a new viewer sees what is there', async () => {
  const auth = { authorization: `Bearer ${paddock.admin.token}` };
  const a = await openTerminal(wsUrl(`/terminal/${serviceId}?cols=100&rows=30`), auth);
  const b = await openTerminal(wsUrl(`/terminal/${serviceId}`), auth);
  try {
    await waitFor('both viewers to be attached', async () => a.screen().length > 0 && b.screen().length > 0);
    a.ws.send(Buffer.from('echo viewer-$((6*7))\r'));
    await waitFor('the output in viewer A', async () => a.screen().includes('viewer-42'), 10_000);
    await waitFor('the output in viewer B', async () => b.screen().includes('viewer-42'), 10_000);

    b.ws.send(JSON.stringify({ type: 'resize', cols: 91, rows: 27 }));
    const exec = await paddock.admin.request('POST', `/api/v1/instances/${serviceId}/exec`, { cmd: ['tmux', 'list-clients', '-F', '#{client_width}x#{client_height}'] });
    await waitFor(
      'the resize to reach tmux',
      async () => {
        const r = await paddock.admin.request('POST', `/api/v1/instances/${serviceId}/exec`, { cmd: ['tmux', 'list-clients', '-F', '#{client_width}x#{client_height}'] });
        return String(r.body).includes('91x27');
      },
      10_000,
    );
    assert.equal(exec.status, 200);
  } finally {
    await a.close();
    await b.close();
  }
  const c = await openTerminal(wsUrl(`/terminal/${serviceId}`), auth);
  try {
    await waitFor('the earlier output on a new viewer', async () => c.screen().includes('viewer-42'), 10_000);
  } finally {
    await c.close();
  }
});

test('exec streams stdout and stderr, takes stdin, and ends with the exit code', async () => {
  const res = await fetch(`${paddock.url}/api/v1/instances/${serviceId}/exec`, {
    method: 'POST',
    headers: { authorization: `Bearer ${paddock.admin.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ cmd: ['sh', '-c', 'echo out; echo err >&2; tr a-z A-Z; pwd; id -u; exit 3'], stdin: 'piped in\n' }),
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
  const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as { stream?: string; data?: string; exitCode?: number });
  const text = (stream: string) => lines.filter((l) => l.stream === stream).map((l) => l.data).join('');
  assert.equal(text('stdout'), 'out\nPIPED IN\n/workspace\n1000\n');
  assert.equal(text('stderr'), 'err\n');
  assert.deepEqual(lines.at(-1), { exitCode: 3 });
});

test('a terminal ticket works once, and not after it expires', async () => {
  const t = await paddock.admin.request('POST', `/api/v1/instances/${serviceId}/terminal-ticket`);
  assert.equal(t.status, 201);
  const first = await openTerminal(wsUrl(t.body.path));
  await first.close();
  await assert.rejects(openTerminal(wsUrl(t.body.path)), /HTTP 401/);
  const late = await paddock.admin.request('POST', `/api/v1/instances/${serviceId}/terminal-ticket`);
  await new Promise((r) => setTimeout(r, 2500));
  await assert.rejects(openTerminal(wsUrl(late.body.path)), /HTTP 401/);
  await assert.rejects(openTerminal(wsUrl(`/terminal/${serviceId}`)), /HTTP 401/, 'no token, no ticket');
});

test("another user's token gets 404 on every path", async () => {
  for (const [method, path, body] of [
    ['GET', `/api/v1/instances/${serviceId}/ssh`, undefined],
    ['POST', `/api/v1/instances/${serviceId}/terminal-ticket`, undefined],
    ['POST', `/api/v1/instances/${serviceId}/exec`, { cmd: ['true'] }],
  ] as const) {
    const r = await other.request(method, path, body);
    assert.equal(r.status, 404, `${method} ${path}`);
  }
  await assert.rejects(openTerminal(wsUrl(`/terminal/${serviceId}`), { authorization: `Bearer ${other.token}` }), /HTTP 404/);
});

test('a job that is not running cannot be joined; a cancelled service closes its doors', async () => {
  const { id } = await paddock.admin.submit({ kind: 'shell', command: 'true' });
  await paddock.admin.waitFinal(id);
  const r = await paddock.admin.request('GET', `/api/v1/instances/${id}/ssh`);
  assert.equal(r.status, 409);
  assert.equal(r.body.error.code, 'instance_unavailable');

  const ssh = await paddock.admin.request('GET', `/api/v1/instances/${serviceId}/ssh`);
  assert.equal((await paddock.admin.request('POST', `/api/v1/executions/${serviceId}/cancel`)).status, 202);
  assert.equal((await paddock.admin.waitFinal(serviceId, 30_000)).state, 'cancelled');
  await assert.rejects(sshRun(paddock.url, paddock.admin.token, ssh.body, 'true'));
});
