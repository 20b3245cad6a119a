// Every agent runtime reaches its LLM through billing's metering proxy, with no network at all: the real
// provider key, stored as the owner's secret, reaches the provider (a stand-in that speaks each API) and
// never the container; the run key reaches the container and never the provider; and the tokens the
// execution's cost shows are exactly those the provider reported.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { freePort, startPaddock, startScriptedProvider, type ApiClient, type RecordedRequest, type RunningPaddock, type ScriptedProvider, type Step } from '@paddock/testkit';
import { containersOf, docker, waitFor } from '../src/index.js';

let paddock: RunningPaddock;
/** Where the stand-in of each test listens: billing's proxy is told once, at the start. */
let providerPort: number;

/** Token figures with every kind, so that a kind lost or swapped on the way shows. */
const USAGE = { inputTokens: 137, outputTokens: 29, cacheReadTokens: 2048, cacheWriteTokens: 311, reasoningTokens: 5 };
/** The first answer of each run streams slowly, so that the container is looked into while it waits for it. */
const SLOW: Step = { text: 'The answer is forty-two.', usage: USAGE, pauseMs: 6_000 };

before(async () => {
  providerPort = await freePort();
  const upstream = `http://127.0.0.1:${providerPort}`;
  paddock = await startPaddock({ env: { PADDOCK_LLM_UPSTREAMS: `openai=${upstream},anthropic=${upstream},gemini=${upstream}` } });
});

after(async () => {
  await paddock?.stop();
});

type Secret = 'OPENAI_API_KEY' | 'ANTHROPIC_API_KEY' | 'GEMINI_API_KEY';
const PROVIDER_OF: Record<RecordedRequest['api'], string> = { openai: 'openai', 'openai-responses': 'openai', anthropic: 'anthropic', gemini: 'gemini' };

interface Case {
  readonly runtime: string;
  readonly secret: Secret;
  /** The APIs the runtime is expected to speak. */
  readonly apis: readonly RecordedRequest['api'][];
  /** Its provider's script, first steps: what keeps its container busy while it is looked into. */
  readonly script: readonly Step[];
  readonly env?: Record<string, string>;
}

const CASES: readonly Case[] = [
  {
    runtime: 'task',
    secret: 'OPENAI_API_KEY',
    apis: ['openai'],
    // The task agent does not stream: a command that takes a while keeps its container up.
    script: [
      { toolCalls: [{ name: 'run_shell', args: { command: 'sleep 8; echo slept' } }], usage: USAGE },
      { toolCalls: [{ name: 'finish', args: { summary: 'The answer is forty-two.' } }], usage: USAGE },
    ],
  },
  { runtime: 'claude-code', secret: 'ANTHROPIC_API_KEY', apis: ['anthropic'], script: [SLOW] },
  { runtime: 'codex', secret: 'OPENAI_API_KEY', apis: ['openai-responses'], script: [SLOW] },
  // A named model: with none, Gemini CLI first asks a router model to pick one, which wants JSON back.
  { runtime: 'gemini-cli', secret: 'GEMINI_API_KEY', apis: ['gemini'], script: [SLOW], env: { GEMINI_MODEL: 'gemini-2.5-flash' } },
  { runtime: 'opencode', secret: 'ANTHROPIC_API_KEY', apis: ['anthropic'], script: [SLOW] },
  { runtime: 'copilot', secret: 'ANTHROPIC_API_KEY', apis: ['anthropic'], script: [SLOW] },
];

/** A user of their own, with `secret` stored; returns their client and the real key. */
async function ownerWith(name: string, secret: Secret): Promise<{ api: ApiClient; realKey: string }> {
  const made = await paddock.admin.request('POST', '/api/v1/users', { name });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const api = paddock.admin.withToken(made.body.token);
  const realKey = `sk-real-${name}-${randomBytes(12).toString('hex')}`;
  const put = await api.request('PUT', `/api/v1/secrets/${secret}`, { value: realKey });
  assert.ok(put.status < 300, JSON.stringify(put.body));
  return { api, realKey };
}

/** Runs `script` in the container as its user, with `input` on stdin (never on a command line, where the container would see it). */
function execIn(containerId: string, script: string, input: string): Promise<{ out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('docker', ['exec', '-i', '--user', '1000:1000', containerId, 'sh', '-c', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', () => resolve({ out, err }));
    child.stdin.end(input);
  });
}

/**
 * Every process's environment and command line, then the files under the writable places (and what the
 * broker gives the run) that hold the real key, read from stdin.
 */
const LOOK_INSIDE = `
for p in /proc/[0-9]*; do tr '\\0' '\\n' < "$p/environ"; tr '\\0' ' ' < "$p/cmdline"; echo; done 2>/dev/null
echo '--- files holding the key:'
grep -rlF -f /dev/stdin /home/agent /tmp /workspace /run/paddock /opt/paddock/run 2>/dev/null
echo '--- end'
`;

/** Tokens by `provider/model`, from the stand-in's records of the calls it answered with usage. */
function reportedByModel(requests: readonly RecordedRequest[]): Map<string, { calls: number; input: number; output: number; cacheRead: number; cacheWrite: number }> {
  const byModel = new Map<string, { calls: number; input: number; output: number; cacheRead: number; cacheWrite: number }>();
  for (const r of requests) {
    if (!r.usage) continue;
    const model = r.api === 'gemini' ? decodeURIComponent(/\/models\/([^/:]+):/.exec(r.url)?.[1] ?? '') : String(r.body.model);
    const key = `${PROVIDER_OF[r.api]}/${model}`;
    const sum = byModel.get(key) ?? { calls: 0, input: 0, output: 0, cacheRead: 0, cacheWrite: 0 };
    byModel.set(key, {
      calls: sum.calls + 1,
      input: sum.input + r.usage.inputTokens,
      output: sum.output + r.usage.outputTokens,
      cacheRead: sum.cacheRead + r.usage.cacheReadTokens,
      cacheWrite: sum.cacheWrite + r.usage.cacheWriteTokens,
    });
  }
  return byModel;
}

interface CostModel {
  provider: string;
  model: string;
  calls: number;
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
}

for (const c of CASES) {
  test(`${c.runtime}: through the metering proxy with no network; the real key stays out of the container; every token is counted`, async () => {
    const { api, realKey } = await ownerWith(`metered-${c.runtime}`, c.secret);
    // Side calls (a title, a quota check) are answered slowly too: whichever comes first, the agent still runs
    // while its container is looked into.
    const provider = await startScriptedProvider({ [PROVIDER_OF[c.apis[0]!]]: c.script, fallback: { text: 'The answer is forty-two.', usage: USAGE, pauseMs: 2_000 }, port: providerPort });
    try {
      await runMetered(c, api, realKey, provider);
    } finally {
      await provider.stop();
    }
  });
}

async function runMetered(c: Case, api: ApiClient, realKey: string, provider: ScriptedProvider): Promise<void> {
  const { id } = await api.submit({ kind: 'agent', runtime: c.runtime, prompt: `What is six times seven? (${c.runtime})`, network: 'none', ...(c.env ? { env: c.env } : {}) });

  // While it waits for its provider, the container holds the run key and nothing of the real one.
  const containerId = await waitFor(
    `a call of ${c.runtime} to the provider`,
    async () => {
      const [container] = await containersOf(id);
      const calling = provider.requests.some((r) => r.usage !== undefined);
      return container?.State === 'running' && calling ? container.Id : undefined;
    },
    120_000,
    200,
  );
  const env: string[] = (await docker.getContainer(containerId).inspect()).Config.Env;
  assert.ok(!env.some((e) => e.includes(realKey)), 'the container was created without the real key');
  const llmUrl = env.find((e) => e.startsWith('PADDOCK_LLM_URL='))?.slice('PADDOCK_LLM_URL='.length);
  assert.ok(llmUrl, 'the container was given the metering proxy');
  const { out: inside, err } = await execIn(containerId, LOOK_INSIDE, `${realKey}\n`);
  const [processes, files] = inside.split('--- files holding the key:\n');
  assert.match(processes ?? '', /PADDOCK_LLM_KEY=plk_/, `the processes were read (docker exec said: ${err})`);
  assert.equal(files?.replace('--- end\n', '').trim(), '', `files holding the real key:\n${files}`);
  assert.ok(!inside.includes(realKey), 'no process has the real key in its environment or command line');
  const runKey = /PADDOCK_LLM_KEY=(plk_\S+)/.exec(processes ?? '')?.[1];
  assert.ok(runKey);
  // The provider it has a key of leads to the proxy; the others are left unset.
  const wiring: Record<Secret, string> = {
    OPENAI_API_KEY: `OPENAI_BASE_URL=${llmUrl}/openai/v1`,
    ANTHROPIC_API_KEY: `ANTHROPIC_BASE_URL=${llmUrl}/anthropic`,
    GEMINI_API_KEY: `GOOGLE_GEMINI_BASE_URL=${llmUrl}/gemini`,
  };
  for (const [secret, line] of Object.entries(wiring) as [Secret, string][]) {
    assert.equal(env.includes(line), secret === c.secret, `${line} ${secret === c.secret ? 'given' : 'not given'}`);
    assert.equal(env.includes(`${secret}=${runKey}`), secret === c.secret, `${secret}: the run key ${secret === c.secret ? 'given' : 'not given'}`);
  }

  const final = await api.waitFinal(id, 240_000);
  const log = await api.logs(id);
  assert.equal(final.state, 'completed', `${final.error}\n${log}`);
  assert.match(log, /forty-two/);
  assert.ok(provider.requests.filter((r) => r.usage !== undefined).length >= c.script.length, 'the run took its scripted steps');

  // The provider saw the real key on every call, and never the run key.
  const seen = provider.requests;
  assert.ok(seen.length > 0);
  for (const r of seen) {
    assert.ok(c.apis.includes(r.api), `${c.runtime} spoke ${r.api}`);
    assert.equal(r.key, realKey);
    assert.ok(!JSON.stringify(r.headers).includes(runKey) && !r.url.includes(runKey) && !JSON.stringify(r.body ?? '').includes(runKey));
  }

  // The execution's cost counts exactly the tokens the provider reported, by model.
  const reported = reportedByModel(seen);
  assert.ok(reported.size > 0, 'the provider reported usage');
  const counted = await waitFor(
    'the execution cost to count every call',
    async () => {
      const r = await api.request('GET', `/api/v1/executions/${id}/cost`);
      if (r.status !== 200) return undefined;
      const models: CostModel[] = r.body.models;
      const calls = models.reduce((n, m) => n + m.calls, 0);
      return calls >= [...reported.values()].reduce((n, m) => n + m.calls, 0) ? models : undefined;
    },
    30_000,
    250,
  );
  assert.deepEqual(
    new Map(counted.map((m) => [`${m.provider}/${m.model}`, { calls: m.calls, input: m.inputTokens, output: m.outputTokens, cacheRead: m.cacheReadTokens, cacheWrite: m.cacheWriteTokens }])),
    reported,
  );
}
