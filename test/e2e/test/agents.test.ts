// Agent executions through the REST API, against a local provider that speaks the real wire protocols.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { after, before, test } from 'node:test';
import { readFile } from 'node:fs/promises';
import { freePort, startPaddock, startScriptedProvider, type RunningPaddock, type ScriptedProvider, type Step } from '@paddock/testkit';
import { containersOf, docker, readZip } from '../src/index.js';

let paddock: RunningPaddock;
/**
 * The host ports the stand-in provider and the git server listen on. Agents reach the provider through
 * billing's metering proxy (PADDOCK_LLM_UPSTREAMS), the git server directly: the only host port they may open.
 */
let providerPort: number;
let repoPort: number;

before(async () => {
  [providerPort, repoPort] = await Promise.all([freePort(), freePort()]);
  const upstream = `http://127.0.0.1:${providerPort}`;
  paddock = await startPaddock({ env: { PADDOCK_INSTANCE_HOST_PORTS: String(repoPort), PADDOCK_LLM_UPSTREAMS: `openai=${upstream},anthropic=${upstream}` } });
});

after(async () => {
  await paddock?.stop();
});

const COMPUTE: Step[] = [
  { text: 'Computing with Python.', toolCalls: [{ name: 'run_python', args: { code: 'import math\nprint(math.factorial(12))' } }] },
  { toolCalls: [{ name: 'write_file', args: { path: 'answer.txt', content: '479001600\n' } }] },
  { toolCalls: [{ name: 'finish', args: { summary: '12! = 479001600, saved in answer.txt' } }] },
];

async function withProvider<T>(script: { openai?: Step[]; anthropic?: Step[] }, fn: (p: ScriptedProvider) => Promise<T>): Promise<T> {
  const provider = await startScriptedProvider({ ...script, port: providerPort });
  try {
    return await fn(provider);
  } finally {
    await provider.stop();
  }
}

test('the task runtime computes with Python over the OpenAI protocol; the file is in the ZIP', async () => {
  await withProvider({ openai: COMPUTE }, async (provider) => {
    const created = await paddock.admin.submit({
      kind: 'agent',
      runtime: 'task',
      prompt: 'Compute 12 factorial and save it in answer.txt',
      env: { OPENAI_API_KEY: 'sk-test' },
    });
    assert.equal(created.kind, 'agent');
    assert.equal(created.runtime, 'task');
    assert.equal(created.image, 'paddock/task:latest');
    assert.equal(created.network, 'bridge');
    const log = await paddock.admin.logs(created.id, true);
    const final = await paddock.admin.waitFinal(created.id);
    assert.equal(final.state, 'completed', `${final.error}\n${log}`);
    assert.match(log, /starting task in tmux session 'agent'/);
    assert.match(log, /^479001600$/m);
    assert.match(log, /done in 3 steps: 12! = 479001600/);
    assert.match(log, /task exited with status 0/);
    assert.equal(provider.requests.length, 3);
    assert.equal(provider.requests[0]?.body.messages[1].content, 'Compute 12 factorial and save it in answer.txt');

    const archive = await readZip((await paddock.admin.artifacts(created.id)).bytes);
    try {
      assert.equal(await archive.read('answer.txt'), '479001600\n');
      assert.match(await archive.read('RESULT.md'), /12! = 479001600/);
    } finally {
      await archive.close();
    }
    assert.deepEqual(await containersOf(created.id), []);
  });
});

test("the owner's stored secrets reach the agent (Anthropic protocol) and are never shown back", async () => {
  const r = await paddock.admin.request('POST', '/api/v1/users', { name: 'carol' });
  const carol = paddock.admin.withToken(r.body.token);
  await withProvider({ anthropic: COMPUTE }, async (provider) => {
    assert.equal((await carol.request('PUT', '/api/v1/secrets/ANTHROPIC_API_KEY', { value: 'sk-ant-carol' })).status, 204);
    const listed = await carol.request('GET', '/api/v1/secrets');
    assert.deepEqual(listed.body.items.map((s: { name: string }) => s.name), ['ANTHROPIC_API_KEY']);
    assert.ok(!JSON.stringify(listed.body).includes('sk-ant-carol'));
    assert.equal((await paddock.admin.request('GET', '/api/v1/secrets')).body.items.length, 0, "one user's secrets are not another's");

    const { id } = await carol.submit({ kind: 'agent', prompt: 'Compute 12 factorial and save it in answer.txt', secrets: ['ANTHROPIC_API_KEY'] });
    const final = await carol.waitFinal(id);
    assert.equal(final.state, 'completed', `${final.error}\n${await carol.logs(id)}`);
    assert.equal(provider.requests[0]?.headers['x-api-key'], 'sk-ant-carol');
    assert.ok(!JSON.stringify(await carol.get(id)).includes('sk-ant-carol'));
    assert.equal((await carol.request('DELETE', '/api/v1/secrets/ANTHROPIC_API_KEY')).status, 204);
    assert.equal((await carol.request('DELETE', '/api/v1/secrets/ANTHROPIC_API_KEY')).status, 404);
  });
});

/** A git repository served over git's "dumb" HTTP protocol, readable only with the right token. */
async function serveRepo(token: string): Promise<{ url: string; stop(): Promise<void>; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'paddock-repo-'));
  const git = (...args: string[]) => execFileSync('git', args, { cwd: dir, stdio: 'pipe' });
  git('init', '-q', '-b', 'main', 'src');
  await writeFile(join(dir, 'src', 'README.md'), '# The repo\nmagic number: 4242\n');
  execFileSync('git', ['-C', join(dir, 'src'), '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qam', 'first', '--allow-empty'], { stdio: 'pipe' });
  execFileSync('git', ['-C', join(dir, 'src'), 'add', 'README.md'], { stdio: 'pipe' });
  execFileSync('git', ['-C', join(dir, 'src'), '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'readme'], { stdio: 'pipe' });
  git('clone', '-q', '--bare', 'src', 'repo.git');
  execFileSync('git', ['-C', join(dir, 'repo.git'), 'update-server-info'], { stdio: 'pipe' });
  const expected = `Basic ${Buffer.from(`x-access-token:${token}`).toString('base64')}`;
  const server: Server = createServer((req, res) => {
    if (req.headers.authorization !== expected) return res.writeHead(401, { 'www-authenticate': 'Basic realm="repo"' }).end();
    const path = normalize(decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/'));
    readFile(join(dir, path)).then(
      (body) => res.writeHead(200).end(body),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(repoPort, '0.0.0.0', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://host.docker.internal:${port}/repo.git`,
    dir,
    stop: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

test('the repository asked for is cloned into /workspace with its token before the agent starts', async () => {
  const repo = await serveRepo('ghp_secret');
  try {
    await withProvider(
      {
        openai: [
          { toolCalls: [{ name: 'run_shell', args: { command: 'grep magic README.md > seen.txt; git log --oneline | wc -l >> seen.txt' } }] },
          { text: 'Found the magic number 4242.' },
        ],
      },
      async () => {
        const { id } = await paddock.admin.submit({
          kind: 'agent',
          runtime: 'task',
          prompt: 'What is the magic number in the README?',
          repo: { url: repo.url, branch: 'main', token: 'ghp_secret' },
          files: { 'notes/given.txt': 'kept beside the clone' },
          env: { OPENAI_API_KEY: 'k' },
        });
        const view = await paddock.admin.get(id);
        assert.deepEqual(view.repo, { url: repo.url, branch: 'main' });
        assert.ok(!JSON.stringify(view).includes('ghp_secret'), 'the token is never shown back');
        const final = await paddock.admin.waitFinal(id);
        const log = await paddock.admin.logs(id);
        assert.equal(final.state, 'completed', `${final.error}\n${log}`);
        assert.match(log, /cloning http:\/\/host\.docker\.internal:\d+\/repo\.git \(branch main\)/);
        assert.doesNotMatch(log, /ghp_secret/);
        const archive = await readZip((await paddock.admin.artifacts(id)).bytes);
        try {
          assert.equal(await archive.read('seen.txt'), 'magic number: 4242\n2\n');
          assert.equal(await archive.read('notes/given.txt'), 'kept beside the clone');
          assert.ok(archive.names.includes('.git/HEAD'));
        } finally {
          await archive.close();
        }
      },
    );
    // A wrong token: the clone fails, and so does the execution, saying why.
    const { id } = await paddock.admin.submit({ kind: 'agent', runtime: 'task', prompt: 'x', repo: { url: repo.url, token: 'wrong' } });
    const failed = await paddock.admin.waitFinal(id);
    assert.equal(failed.state, 'failed');
    assert.match(await paddock.admin.logs(id), /could not clone/);
  } finally {
    await repo.stop();
  }
});

test('POST /schedule {prompt} runs the default runtime', async () => {
  await withProvider({ openai: [{ text: 'Nothing to do: hello.' }] }, async () => {
    const r = await paddock.admin.request('POST', '/schedule', {
      prompt: 'Say hello',
      env: { OPENAI_API_KEY: 'k' },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.kind, 'agent');
    assert.equal(r.body.runtime, 'task');
    const final = await paddock.admin.waitFinal(r.body.id);
    assert.equal(final.state, 'completed', `${final.error}\n${await paddock.admin.logs(r.body.id)}`);
  });
});

test('an agent without a provider fails and says what to set', async () => {
  const { id } = await paddock.admin.submit({ kind: 'agent', runtime: 'task', prompt: 'anything' });
  const final = await paddock.admin.waitFinal(id);
  assert.equal(final.state, 'failed');
  assert.equal(final.exitCode, 1);
  assert.match(await paddock.admin.logs(id), /no LLM provider: set OPENAI_API_KEY/);
});

test('agent requests are checked: runtime, prompt, fields of other kinds', async () => {
  for (const [body, message] of [
    [{ kind: 'agent', runtime: 'clippy', prompt: 'x' }, /runtime must be one of/],
    [{ kind: 'agent', runtime: 'task' }, /needs "prompt"/],
    [{ kind: 'agent', prompt: 'x', command: 'ls' }, /does not take "command"/],
    [{ kind: 'shell', command: 'ls', prompt: 'x' }, /does not take "prompt"/],
    [{ kind: 'agent', prompt: 'x', repo: { url: 'file:///etc' } }, /repo\.url must match/],
  ] as const) {
    const r = await paddock.admin.request('POST', '/api/v1/executions', body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.match(r.body.error.message, message);
  }
});

for (const [runtime, command] of [
  ['claude-code', 'claude'],
  ['gemini-cli', 'gemini'],
  ['opencode', 'opencode'],
  ['copilot', 'copilot'],
  ['codex', 'codex'],
] as const) {
  test(`the ${runtime} image has its CLI installed and answering --version, as the agent user`, async () => {
    const container = await docker.createContainer({
      Image: `paddock/${runtime}:latest`,
      Cmd: ['sh', '-c', `${command} --version`],
      User: '1000:1000',
      Env: ['HOME=/home/agent'],
      HostConfig: { NetworkMode: 'none', AutoRemove: false },
    });
    try {
      const stream = await container.attach({ stream: true, stdout: true, stderr: true });
      const chunks: Buffer[] = [];
      stream.on('data', (d: Buffer) => chunks.push(d));
      await container.start();
      const { StatusCode } = await container.wait();
      const out = Buffer.concat(chunks).toString('utf8');
      assert.equal(StatusCode, 0, out);
      assert.match(out, /\d+\.\d+\.\d+/);
    } finally {
      await container.remove({ force: true });
    }
  });
}

test('Claude Code runs as an agent: it reads the prompt, talks to the provider (streaming), and its answer is the log', async () => {
  const provider = await startScriptedProvider({ fallback: { text: 'The answer is forty-two.' }, port: providerPort });
  try {
    const { id } = await paddock.admin.submit({
      kind: 'agent',
      runtime: 'claude-code',
      prompt: 'What is six times seven? PROMPT-MARK-7',
      env: { ANTHROPIC_API_KEY: 'sk-ant-test' },
    });
    const final = await paddock.admin.waitFinal(id, 120_000);
    const log = await paddock.admin.logs(id);
    assert.equal(final.state, 'completed', `${final.error}\n${log}`);
    assert.match(log, /The answer is forty-two\./);
    assert.match(log, /claude-code exited with status 0/);
    const asked = provider.requests.filter((r) => JSON.stringify(r.body).includes('PROMPT-MARK-7'));
    assert.ok(asked.length > 0, 'the prompt reached the provider');
    assert.equal(asked[0]?.headers['x-api-key'], 'sk-ant-test');
    assert.equal(asked[0]?.body.stream, true);
  } finally {
    await provider.stop();
  }
});
