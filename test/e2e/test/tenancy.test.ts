// Teams and projects end to end, on a real `paddock up`: a member of a team joins the terminal of a
// teammate's instance while a viewer only watches its list and a user of another team sees nothing; a
// project's secrets reach the containers of its executions; a project token runs and reads in its project;
// and no provider key reaches a container, which has the run key and the metering proxy's address instead.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { startPaddock, type ApiClient, type RunningPaddock } from '@paddock/testkit';
import { waitFor } from '../src/index.js';

let paddock: RunningPaddock;
let alice: ApiClient;
let max: ApiClient;
let vera: ApiClient;
let bob: ApiClient;
let team: string;
let project: string;

async function ok(client: ApiClient, method: string, path: string, body?: unknown): Promise<Record<string, string>> {
  const r = await client.request(method, path, body);
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as Record<string, string>;
}

before(async () => {
  paddock = await startPaddock();
  const ids: Record<string, string> = {};
  const create = async (name: string) => {
    const r = await paddock.admin.request('POST', '/api/v1/users', { name });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    ids[name] = r.body.id;
    return paddock.admin.withToken(r.body.token);
  };
  [alice, max, vera, bob] = [await create('alice'), await create('max'), await create('vera'), await create('bob')];
  team = (await ok(alice, 'POST', '/api/v1/teams', { name: 'acme' })).id!;
  project = (await ok(alice, 'POST', '/api/v1/projects', { teamId: team, name: 'web' })).id!;
  await ok(alice, 'POST', `/api/v1/teams/${team}/members`, { userId: ids['max'], role: 'member' });
  await ok(alice, 'POST', `/api/v1/teams/${team}/members`, { userId: ids['vera'], role: 'viewer' });
});

after(async () => {
  await paddock?.stop();
});

/** Opens the terminal of an instance; resolves with the socket, or rejects with the refused upgrade's status. */
function openTerminal(id: string, token: string): Promise<{ ws: WebSocket; screen(): string }> {
  const ws = new WebSocket(`${paddock.url.replace(/^http/, 'ws')}/terminal/${id}`, { headers: { authorization: `Bearer ${token}` } });
  let text = '';
  ws.on('message', (d: Buffer) => (text += d.toString('utf8')));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, screen: () => text }));
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      reject(new Error(`HTTP ${res.statusCode}`));
    });
    ws.once('error', reject);
  });
}

test("a member joins the terminal of a teammate's instance; a viewer lists it but is refused the terminal; another team sees nothing", { timeout: 120_000 }, async () => {
  const { id } = await alice.submit({ kind: 'shell', command: 'echo service-ready', service: true, project, timeoutS: 300 });
  try {
    await alice.waitState(id, 'executing');
    await waitFor('the service to idle', async () => /idling/.test(await alice.logs(id)), 30_000, 250);

    const terminal = await openTerminal(id, max.token);
    try {
      await waitFor('the terminal to attach', async () => terminal.screen().length > 0, 15_000);
      terminal.ws.send(Buffer.from('echo teammate-$((6*7))\r'));
      await waitFor("Max's command in Alice's instance", async () => terminal.screen().includes('teammate-42'), 15_000);
    } finally {
      terminal.ws.close();
    }

    const listed = await vera.request('GET', `/api/v1/executions?project=${project}`);
    assert.equal(listed.status, 200);
    assert.ok(listed.body.items.some((e: { id: string; owner: string }) => e.id === id), "the viewer sees Alice's instance in the project's list");
    await assert.rejects(openTerminal(id, vera.token), /HTTP 403/);
    await assert.rejects(openTerminal(id, bob.token), /HTTP 404/);
    assert.equal((await bob.request('GET', `/api/v1/executions/${id}`)).status, 404);
  } finally {
    await alice.request('POST', `/api/v1/executions/${id}/cancel`);
  }
});

test("a project's secrets reach its executions' containers, its owner's own first; no provider key does", { timeout: 120_000 }, async () => {
  await ok(alice, 'PUT', `/api/v1/projects/${project}/secrets/WEB_KEY`, { value: 'web-value' });
  await ok(alice, 'PUT', `/api/v1/projects/${project}/secrets/SHARED`, { value: 'of-the-project' });
  await ok(max, 'PUT', '/api/v1/secrets/SHARED', { value: 'of-max' });
  await ok(max, 'PUT', '/api/v1/secrets/OPENAI_API_KEY', { value: 'sk-max-real-key' });
  const job = await max.submit({
    kind: 'shell',
    command: 'printf "%s|%s|%s|%s|%s\\n" "$WEB_KEY" "$SHARED" "$OPENAI_API_KEY" "$OPENAI_BASE_URL" "$PADDOCK_LLM_URL"; env | grep -c sk-max-real-key || true',
    project,
    secrets: ['WEB_KEY', 'SHARED', 'OPENAI_API_KEY'],
  });
  const final = await max.waitFinal(job.id, 90_000);
  assert.equal(final.state, 'completed', JSON.stringify(final));
  const [values, leaks] = (await max.logs(job.id)).trim().split('\n');
  const [web, shared, key, baseUrl, proxy] = values!.split('|');
  assert.deepEqual([web, shared], ['web-value', 'of-max']);
  assert.match(key!, /^plk_[A-Za-z0-9_-]{32}$/, 'the run key in place of the provider key');
  assert.deepEqual([baseUrl, proxy], ['http://127.0.0.1:4000/openai/v1', 'http://127.0.0.1:4000']);
  assert.equal(leaks, '0', 'the real key is nowhere in the environment');
});

test('a project token runs and reads in its project; a viewer token reads only', { timeout: 120_000 }, async () => {
  const member = paddock.admin.withToken((await ok(alice, 'POST', `/api/v1/projects/${project}/tokens`, { role: 'member', name: 'ci' })).token!);
  const viewer = paddock.admin.withToken((await ok(alice, 'POST', `/api/v1/projects/${project}/tokens`, { role: 'viewer' })).token!);
  const job = await member.submit({ kind: 'shell', command: 'echo from-ci' });
  assert.equal(job['projectId'], project);
  assert.equal((await member.waitFinal(job.id, 90_000)).state, 'completed');
  assert.equal(await viewer.logs(job.id), 'from-ci\n');
  const refused = await viewer.request('POST', '/api/v1/executions', { kind: 'shell', command: 'true' });
  assert.equal(refused.status, 403);
  const mine = await bob.submit({ kind: 'shell', command: 'true' });
  assert.equal((await member.request('GET', `/api/v1/executions/${mine.id}`)).status, 404);
  assert.equal((await member.request('GET', '/api/v1/teams')).status, 401);
});
