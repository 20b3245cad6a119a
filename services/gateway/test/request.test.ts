// What the gateway makes of a request body before it is stored and put on the bus: defaults, limits,
// kind-specific fields, file paths that must stay inside /workspace, and the spec the scheduler receives.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ValidationError } from '@paddock/errors';
import { ExecutionKind, ExecutionSpec, NetworkMode } from '@paddock/proto';
import { gatewayConfig } from '../src/config.js';
import { normalizeRequest, toSpec } from '../src/executions/request.js';
import type { ExecutionRequest } from '../src/executions/schemas.js';

const config = gatewayConfig({ PADDOCK_HOME: '/nonexistent/paddock-home' });

/** Asserts that normalizing `body` fails with a ValidationError whose message matches `message`. */
function refused(body: ExecutionRequest, message: RegExp, cfg = config): void {
  assert.throws(
    () => normalizeRequest(body, cfg),
    (err: unknown) => {
      assert.ok(err instanceof ValidationError, `expected a ValidationError, got ${String(err)}`);
      assert.equal(err.code, 'invalid_request');
      assert.equal(err.status, 400);
      assert.match(err.message, message);
      return true;
    },
  );
}

test('a request that names only what to run gets every default', () => {
  const r = normalizeRequest({ kind: 'shell', command: 'echo hi' }, config);
  assert.deepEqual(r, {
    kind: 'shell',
    command: 'echo hi',
    script: null,
    runtime: null,
    prompt: null,
    repo: null,
    files: {},
    env: {},
    image: 'paddock/base:latest',
    resources: { cpus: 1, memoryMb: 1024, diskMb: 0 },
    timeoutS: 3600,
    network: 'none',
    service: false,
    containerRuntime: 'runc',
    secrets: [],
    egress: [],
  });
});

test('the defaults come from the configuration, and what the request names wins over them', () => {
  const cfg = gatewayConfig({
    PADDOCK_HOME: '/nonexistent',
    PADDOCK_DEFAULT_IMAGE: 'example/custom:1',
    PADDOCK_DEFAULT_CPUS: '2',
    PADDOCK_DEFAULT_MEMORY_MB: '256',
    PADDOCK_DEFAULT_TIMEOUT_S: '60',
  });
  const defaults = normalizeRequest({ kind: 'python', script: 'print(1)' }, cfg);
  assert.equal(defaults.image, 'example/custom:1');
  assert.deepEqual(defaults.resources, { cpus: 2, memoryMb: 256, diskMb: 0 });
  assert.equal(defaults.timeoutS, 60);

  const given = normalizeRequest(
    { kind: 'python', script: 'print(1)', image: 'python:3.12', resources: { cpus: 0.5 }, timeoutS: 5, network: 'bridge', env: { A: '1' } },
    cfg,
  );
  assert.equal(given.image, 'python:3.12');
  assert.deepEqual(given.resources, { cpus: 0.5, memoryMb: 256, diskMb: 0 }, 'a resource left out still gets its default');
  assert.equal(given.timeoutS, 5);
  assert.equal(given.network, 'bridge');
  assert.deepEqual(given.env, { A: '1' });
});

test('limits are enforced with a message that names the field and the limit; the limit itself is allowed', () => {
  const cfg = gatewayConfig({ PADDOCK_HOME: '/nonexistent', PADDOCK_MAX_CPUS: '4', PADDOCK_MAX_MEMORY_MB: '2048', PADDOCK_MAX_DISK_MB: '100', PADDOCK_MAX_TIMEOUT_S: '600', PADDOCK_DEFAULT_TIMEOUT_S: '600' });
  const base = { kind: 'shell', command: 'true' } as const;
  refused({ ...base, resources: { cpus: 4.5 } }, /^resources\.cpus may be at most 4$/, cfg);
  refused({ ...base, resources: { memoryMb: 2049 } }, /^resources\.memoryMb may be at most 2048$/, cfg);
  refused({ ...base, timeoutS: 601 }, /^timeoutS may be at most 600$/, cfg);
  refused({ ...base, resources: { diskMb: 101 } }, /^resources\.diskMb may be at most 100$/, cfg);

  const atLimit = normalizeRequest({ ...base, resources: { cpus: 4, memoryMb: 2048, diskMb: 100 }, timeoutS: 600 }, cfg);
  assert.deepEqual(atLimit.resources, { cpus: 4, memoryMb: 2048, diskMb: 100 });
  assert.equal(toSpec(atLimit).diskBytes, 100 * 1024 * 1024);
  assert.equal(atLimit.timeoutS, 600);
});

test('the built-in limits are 16 CPUs, 64 GiB and 7 days', () => {
  const base = { kind: 'shell', command: 'true' } as const;
  refused({ ...base, resources: { cpus: 17 } }, /resources\.cpus may be at most 16/);
  refused({ ...base, resources: { memoryMb: 65537 } }, /resources\.memoryMb may be at most 65536/);
  refused({ ...base, timeoutS: 7 * 24 * 3600 + 1 }, /timeoutS may be at most 604800/);
});

test('each kind takes its own fields and refuses the others by name', () => {
  refused({ kind: 'shell' }, /^a shell execution needs "command"$/);
  refused({ kind: 'shell', command: 'ls', script: 'print(1)' }, /^a shell execution does not take "script"$/);
  refused({ kind: 'shell', command: 'ls', prompt: 'hi' }, /^a shell execution does not take "prompt"$/);
  refused({ kind: 'python' }, /^a python execution needs "script"$/);
  refused({ kind: 'python', script: 'print(1)', command: 'ls' }, /^a python execution does not take "command"$/);
  refused({ kind: 'python', script: 'print(1)', repo: { url: 'https://example.com/r.git' } }, /^a python execution does not take "repo"$/);
  refused({ kind: 'agent' }, /^an agent execution needs "prompt"$/);
  refused({ kind: 'agent', prompt: 'fix it', command: 'ls' }, /execution does not take "command"$/);
  refused({ kind: 'agent', prompt: 'fix it', script: 'print(1)' }, /execution does not take "script"$/);
  refused({ kind: 'shell', command: 'ls', runtime: 'task' }, /^a shell execution does not take "runtime"$/);

  const py = normalizeRequest({ kind: 'python', script: 'print(1)' }, config);
  assert.equal(py.command, null);
  assert.equal(py.script, 'print(1)');
  assert.equal(py.runtime, null);
});

test('an agent gets the default runtime, its image and a network unless the request says otherwise', () => {
  const agent = normalizeRequest({ kind: 'agent', prompt: 'fix the tests' }, config);
  assert.equal(agent.runtime, 'task');
  assert.equal(agent.image, 'paddock/task:latest');
  assert.equal(agent.network, 'bridge', 'an agent talks to its LLM provider');
  assert.equal(agent.prompt, 'fix the tests');
  assert.equal(agent.command, null);
  assert.equal(agent.repo, null);

  const chosen = normalizeRequest(
    { kind: 'agent', prompt: 'p', runtime: 'claude-code', network: 'none', repo: { url: 'https://example.com/r.git', token: 't0k' } },
    config,
  );
  assert.equal(chosen.runtime, 'claude-code');
  assert.equal(chosen.image, 'paddock/claude-code:latest');
  assert.equal(chosen.network, 'none');
  assert.deepEqual(chosen.repo, { url: 'https://example.com/r.git', branch: null, token: 't0k' });
  assert.equal(normalizeRequest({ kind: 'agent', prompt: 'p', image: 'me/agent:2' }, config).image, 'me/agent:2', 'a named image wins');
  refused({ kind: 'agent', prompt: 'p', runtime: 'nope' }, /^no agent runtime "nope"$/);
  refused({ kind: 'agent', prompt: 'p' }, /^no agent runtime "gone"$/, { ...config, defaults: { ...config.defaults, runtime: 'gone' } });
});

test('every path that could leave /workspace, or is not a plain relative path, is refused and named', () => {
  const cases: [string, RegExp][] = [
    ['..', /may not contain "\.\."/],
    ['../etc/passwd', /may not contain "\.\."/],
    ['a/../../b', /may not contain "\.\."/],
    ['a/b/..', /may not contain "\.\."/],
    ['a/../b', /may not contain "\.\."/],
    ['/etc/passwd', /must be relative to \/workspace, not absolute/],
    ['/', /must be relative to \/workspace, not absolute/],
    ['//server/share', /must be relative to \/workspace, not absolute/],
    ['..\\outside', /may not contain "\\" or NUL/],
    ['a\\b', /may not contain "\\" or NUL/],
    ['C:\\Windows\\win.ini', /may not contain "\\" or NUL/],
    ['a\0b', /may not contain "\\" or NUL/],
    ['ok.txt\0../../etc/passwd', /may not contain "\\" or NUL/],
    ['a//b', /empty or "\." segment/],
    ['a/', /empty or "\." segment/],
    ['.', /empty or "\." segment/],
    ['./a', /empty or "\." segment/],
    ['a/./b', /empty or "\." segment/],
    ['a/.', /empty or "\." segment/],
    ['', /a path must have 1 to 4096 characters/],
    ['x'.repeat(4097), /a path must have 1 to 4096 characters/],
  ];
  for (const [path, message] of cases) {
    assert.throws(
      () => normalizeRequest({ kind: 'shell', command: 'ls', files: { 'fine.txt': 'ok', [path]: 'evil' } }, config),
      (err: unknown) => {
        assert.ok(err instanceof ValidationError, `${JSON.stringify(path)}: expected a ValidationError, got ${String(err)}`);
        assert.ok(err.message.startsWith(`files["${path}"]: `), `${JSON.stringify(path)}: the message names the path: ${err.message}`);
        assert.match(err.message, message, `${JSON.stringify(path)}`);
        return true;
      },
      `${JSON.stringify(path)} was accepted`,
    );
  }
});

test('nested relative paths, dotfiles and names that merely contain dots are accepted as given', () => {
  const files = {
    'main.py': 'print(1)',
    'src/pkg/__init__.py': '',
    'deep/a/b/c/d/e/f.txt': 'f',
    '.env': 'A=1',
    'conf/.hidden/x': 'x',
    '..foo': 'dots at the start of a name',
    'a..b/c...d': 'dots inside names',
    'with space/ünïcode.txt': 'é',
    ['x'.repeat(4096)]: 'longest allowed',
  };
  const r = normalizeRequest({ kind: 'shell', command: 'ls -R', files }, config);
  assert.deepEqual(r.files, files);
});

test('toSpec carries every field to the spec the scheduler receives, in its units', () => {
  const r = normalizeRequest(
    {
      kind: 'shell',
      command: 'cat in.txt',
      files: { 'in.txt': 'héllo', 'd/e.bin': '' },
      env: { GREETING: 'hi', EMPTY: '' },
      image: 'alpine:3.20',
      resources: { cpus: 1.5, memoryMb: 512 },
      timeoutS: 90,
      network: 'bridge',
    },
    config,
  );
  const spec = toSpec(r);
  assert.equal(spec.kind, ExecutionKind.EXECUTION_KIND_SHELL);
  assert.equal(spec.command, 'cat in.txt');
  assert.equal(spec.script, '');
  assert.deepEqual(Object.keys(spec.files).sort(), ['d/e.bin', 'in.txt']);
  assert.ok(Buffer.isBuffer(spec.files['in.txt']));
  assert.equal(spec.files['in.txt']!.toString('utf8'), 'héllo');
  assert.equal(spec.files['in.txt']!.length, 6, 'UTF-8 bytes, not characters');
  assert.equal(spec.files['d/e.bin']!.length, 0);
  assert.deepEqual(spec.env, { GREETING: 'hi', EMPTY: '' });
  assert.equal(spec.image, 'alpine:3.20');
  assert.equal(spec.cpuMillis, 1500);
  assert.equal(spec.memoryBytes, 512 * 1024 * 1024);
  assert.equal(spec.timeoutMs, 90_000);
  assert.equal(spec.network, NetworkMode.NETWORK_MODE_BRIDGE);
  assert.equal(spec.pidsLimit, 0, 'zero leaves the PID limit to the broker');
  assert.equal(spec.agent, undefined);

  const py = toSpec(normalizeRequest({ kind: 'python', script: 'print(2)', resources: { cpus: 0.25 } }, config));
  assert.equal(py.kind, ExecutionKind.EXECUTION_KIND_PYTHON);
  assert.equal(py.command, '');
  assert.equal(py.script, 'print(2)');
  assert.equal(py.cpuMillis, 250);
  assert.equal(py.memoryBytes, 1024 * 1024 * 1024);
  assert.equal(py.timeoutMs, 3_600_000);
  assert.equal(py.network, NetworkMode.NETWORK_MODE_NONE);

  const agent = toSpec(
    normalizeRequest({ kind: 'agent', prompt: 'do it', runtime: 'aider', env: { OPENAI_API_KEY: 'from-request' }, repo: { url: 'https://example.com/r.git', branch: 'dev', token: 'tk' } }, config),
    { OPENAI_API_KEY: 'from-secrets', ANTHROPIC_API_KEY: 'a-secret' },
  );
  assert.equal(agent.kind, ExecutionKind.EXECUTION_KIND_AGENT);
  assert.deepEqual(agent.agent, { runtime: 'aider', prompt: 'do it', repoUrl: 'https://example.com/r.git', repoBranch: 'dev', repoToken: 'tk' });
  assert.deepEqual(agent.env, { OPENAI_API_KEY: 'from-request', ANTHROPIC_API_KEY: 'a-secret' }, "the request's own env wins over stored secrets");
  assert.equal(agent.image, 'paddock/aider:latest');
});

test('the spec survives the wire: what is published decodes to the same values, at the largest limits too', () => {
  const r = normalizeRequest(
    { kind: 'shell', command: 'true', files: { 'a/b.txt': 'ünïcode ✓' }, resources: { cpus: 16, memoryMb: 65536 }, timeoutS: 7 * 24 * 3600 },
    config,
  );
  const decoded = ExecutionSpec.decode(ExecutionSpec.encode(toSpec(r)).finish());
  assert.equal(decoded.cpuMillis, 16_000);
  assert.equal(decoded.memoryBytes, 65536 * 1024 * 1024);
  assert.equal(decoded.timeoutMs, 7 * 24 * 3600 * 1000);
  assert.equal(Buffer.from(decoded.files['a/b.txt']!).toString('utf8'), 'ünïcode ✓');
  assert.equal(decoded.command, 'true');
});

// Found while writing these tests, and fixed.

test(
  'a CPU share too small to express in milliCPUs is refused rather than sent as 0 (= no CPU limit in Docker)',
  () => {
    let spec: ExecutionSpec | undefined;
    try {
      spec = toSpec(normalizeRequest({ kind: 'shell', command: 'true', resources: { cpus: 0.0004 } }, config));
    } catch (err) {
      assert.ok(err instanceof ValidationError);
      return;
    }
    assert.ok(spec.cpuMillis > 0, `cpuMillis is ${spec.cpuMillis}: the broker sets NanoCpus 0, which Docker reads as unlimited`);
  },
);

test(
  'a configured default above its limit is rejected when the configuration is compiled',
  () => {
    assert.throws(() => gatewayConfig({ PADDOCK_HOME: '/nonexistent', PADDOCK_DEFAULT_CPUS: '8', PADDOCK_MAX_CPUS: '4' }), /PADDOCK_DEFAULT_CPUS/);
    assert.throws(() => gatewayConfig({ PADDOCK_HOME: '/nonexistent', PADDOCK_DEFAULT_TIMEOUT_S: '7200', PADDOCK_MAX_TIMEOUT_S: '3600' }), /PADDOCK_DEFAULT_TIMEOUT_S/);
  },
);
