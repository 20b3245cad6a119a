// Budgets end to end: an execution's LLM calls go through billing's metering proxy to a stand-in provider,
// its project's hard budget fills up, the alerts fire once per threshold (bus and signed webhook), the next
// call of the same run is refused, new work is refused (reject) or held until the limit is raised (queue).
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { freePort, startPaddock, startScriptedProvider, type ApiClient, type RunningPaddock, type ScriptedProvider } from '@paddock/testkit';
import { waitFor } from '../src/index.js';

let paddock: RunningPaddock;
let provider: ScriptedProvider;
let hooks: Server;
const received: { body: string; signature: string | undefined }[] = [];

before(async () => {
  const providerPort = await freePort();
  provider = await startScriptedProvider({ port: providerPort, model: 'gpt-4o', fallback: { text: 'fine' } });
  hooks = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const signature = req.headers['x-paddock-signature'];
      received.push({ body: Buffer.concat(chunks).toString('utf8'), signature: typeof signature === 'string' ? signature : undefined });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => hooks.listen(0, '127.0.0.1', resolve));
  paddock = await startPaddock({ env: { PADDOCK_LLM_UPSTREAMS: `openai=${provider.url}` } });
});

after(async () => {
  await paddock?.stop();
  await provider?.stop();
  hooks?.closeAllConnections();
  await new Promise((resolve) => hooks?.close(resolve));
});

/** Calls the OpenAI API through the proxy until one is refused (at most $CALLS calls), 1.5 s apart; prints each status. */
const CALLS = `
import json, os, time, urllib.request, urllib.error
for n in range(int(os.environ['CALLS'])):
    req = urllib.request.Request(os.environ['OPENAI_BASE_URL'] + '/chat/completions',
        data=json.dumps({'model': 'gpt-4o', 'messages': [{'role': 'user', 'content': 'hi'}]}).encode(),
        headers={'authorization': 'Bearer ' + os.environ['OPENAI_API_KEY'], 'content-type': 'application/json'})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            print('call', n, r.status, flush=True)
    except urllib.error.HTTPError as e:
        print('call', n, e.code, json.loads(e.read())['error']['message'], flush=True)
        break
    time.sleep(1.5)
`;

async function user(name: string): Promise<{ api: ApiClient; projectId: string }> {
  const made = await paddock.admin.request('POST', '/api/v1/users', { name });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const api = paddock.admin.withToken(made.body.token);
  const put = await api.request('PUT', '/api/v1/secrets/OPENAI_API_KEY', { value: `sk-real-${name}` });
  assert.ok(put.status < 300, JSON.stringify(put.body));
  const me = await api.request('GET', '/api/v1/users/me');
  return { api, projectId: me.body.personalProjectId };
}

test('a hard budget alerts once per threshold, cuts the run off mid-way, then rejects or holds new work', async () => {
  const { api, projectId } = await user('dana');
  // gpt-4o at list price: 100 input and 20 output tokens (the stand-in's figures) cost a few hundred
  // micro-units a call, so a 1,000 micro-unit budget is spent within a handful of calls.
  const created = await api.request('POST', '/api/v1/budgets', {
    name: 'tiny',
    project: projectId,
    limitMicros: 1000,
    period: 'month',
    hard: true,
    action: 'reject',
    webhookUrl: `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/alerts`,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const budgetId: string = created.body.budget.id;
  const secret: string = created.body.webhookSecret;

  // A job names the stored provider key it wants (an agent is given its owner's without asking); the proxy holds it.
  const run = await api.submit({ kind: 'python', script: CALLS, env: { CALLS: '8' }, secrets: ['OPENAI_API_KEY'], timeoutS: 120 });
  const log = await api.logs(run.id, true);
  const final = await api.waitFinal(run.id);
  assert.equal(final.state, 'completed', `${final.error}\n${log}`);
  const ok = log.match(/^call \d+ 200$/gm) ?? [];
  const refused = /^call \d+ 429 (.*)$/m.exec(log);
  assert.ok(ok.length >= 2, `some calls went through before the budget was spent:\n${log}`);
  assert.ok(refused, `a call was refused once the budget was spent:\n${log}`);
  assert.match(refused[1]!, /tiny/, 'the refusal names the budget');
  // The proxy swapped in the real key; the provider never saw the run key.
  const keys = provider.requests.map((r) => r.headers.authorization);
  assert.ok(keys.length >= ok.length && keys.every((k) => k === 'Bearer sk-real-dana'), JSON.stringify(keys));

  // Each threshold once, in order, signed with the budget's secret.
  const alerts = await waitFor('three webhook alerts', async () => (received.length >= 3 ? received : undefined), 30_000);
  const thresholds = alerts.map((a) => JSON.parse(a.body).thresholdPercent);
  assert.deepEqual([...thresholds].sort((a, b) => a - b), [50, 80, 100]);
  for (const a of alerts) assert.equal(a.signature, `sha256=${createHmac('sha256', secret).update(a.body).digest('hex')}`);

  const cost = await api.request('GET', `/api/v1/executions/${run.id}/cost`);
  assert.equal(cost.status, 200, JSON.stringify(cost.body));
  const gpt = cost.body.models.find((m: { model: string }) => m.model === 'gpt-4o');
  assert.equal(gpt.calls, ok.length, 'every call that went through is in the ledger, and no refused one');
  assert.ok(cost.body.costMicros >= 1000, JSON.stringify(cost.body));

  // New work is refused, naming the budget.
  const rejected = await api.request('POST', '/api/v1/executions', { kind: 'shell', command: 'true' });
  assert.equal(rejected.status, 402, JSON.stringify(rejected.body));
  assert.equal(rejected.body.error.code, 'budget_exceeded');
  assert.match(rejected.body.error.message, /tiny/);

  // As a queue, it holds the next execution until the limit is raised.
  assert.equal((await api.request('PATCH', `/api/v1/budgets/${budgetId}`, { action: 'queue' })).status, 200);
  const held = await api.request('POST', '/api/v1/executions', { kind: 'shell', command: 'echo released' });
  assert.equal(held.status, 201, JSON.stringify(held.body));
  assert.equal(held.body.state, 'queued');
  assert.match(held.body.heldByBudget ?? '', /tiny/);
  await new Promise((r) => setTimeout(r, 4_000));
  assert.equal((await api.get(held.body.id)).state, 'queued', 'held while the budget is spent');
  assert.equal((await api.request('PATCH', `/api/v1/budgets/${budgetId}`, { limitMicros: 1_000_000_000 })).status, 200);
  const released = await api.waitFinal(held.body.id);
  assert.equal(released.state, 'completed', released.error ?? '');
  assert.equal(await api.logs(held.body.id), 'released\n');
  assert.equal((await api.get(held.body.id)).heldByBudget, null);
});

test("another team's member sees none of the costs or budgets", async () => {
  const { api: erin } = await user('erin');
  const costs = await erin.request('GET', '/api/v1/costs?groupBy=project');
  assert.equal(costs.status, 200, JSON.stringify(costs.body));
  assert.equal(costs.body.rows.filter((r: { costMicros: number }) => r.costMicros > 0).length, 0, JSON.stringify(costs.body));
  const budgets = await erin.request('GET', '/api/v1/budgets');
  assert.equal(budgets.status, 200);
  assert.deepEqual(budgets.body.items, []);
});
