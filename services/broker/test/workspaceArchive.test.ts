import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { extract, type Header } from 'tar-stream';
import { ExecutionKind, ExecutionSpec, NetworkMode } from '@paddock/proto';
import { sha512Crypt, workspaceArchives, type ArchivePut } from '../src/providers/docker/workspaceArchive.js';

interface Entry {
  readonly header: Header;
  readonly content: Buffer;
}

async function entries(tar: Buffer): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  const ex = extract();
  Readable.from([tar]).pipe(ex);
  for await (const e of ex) out.set(e.header.name, { header: e.header, content: await buffer(e) });
  return out;
}

const shell = (files: Record<string, string> = {}) =>
  ExecutionSpec.fromPartial({
    kind: ExecutionKind.EXECUTION_KIND_SHELL,
    command: 'true',
    files: Object.fromEntries(Object.entries(files).map(([k, v]) => [k, Buffer.from(v)])),
  });

/** The entries of each put, by the directory it is extracted into. */
async function byPath(puts: readonly ArchivePut[]): Promise<Map<string, Map<string, Entry>>> {
  const out = new Map<string, Map<string, Entry>>();
  for (const put of puts) out.set(put.path, await entries(put.tar));
  return out;
}

const agent = (extra: Partial<ExecutionSpec['agent']> = {}) =>
  ExecutionSpec.fromPartial({
    kind: ExecutionKind.EXECUTION_KIND_AGENT,
    network: NetworkMode.NETWORK_MODE_BRIDGE,
    agent: { runtime: 'task', prompt: 'Say hi', ...extra },
  });

test('nothing to put when the image is ours and the request has no files and no script', async () => {
  assert.deepEqual(await workspaceArchives(shell(), { imageIsOurs: true }), []);
  assert.deepEqual(await workspaceArchives(shell({ 'a.txt': 'x' }), { imageIsOurs: true, workspaceOnHost: true }), []);
});

test('for an image not ours, one tar at / still makes /workspace, owned by uid 1000', async () => {
  const got = await byPath(await workspaceArchives(shell(), { imageIsOurs: false }));
  assert.deepEqual([...got.keys()], ['/']);
  const root = got.get('/')!;
  assert.deepEqual([...root.keys()], ['workspace/']);
  const ws = root.get('workspace/')!.header;
  assert.equal(ws.type, 'directory');
  assert.equal(ws.uid, 1000);
  assert.equal(ws.gid, 1000);
});

test("the request's files land at their paths in the workspace volume, with their content, owned by uid 1000", async () => {
  const longPath = `${'deep/'.repeat(25)}leaf.txt`;
  const puts = await workspaceArchives(
    shell({ 'a.txt': 'hello', 'src/lib/b.py': 'print("b")\n', 'empty.txt': '', 'ünïcödé.txt': 'ü', [longPath]: 'far down' }),
    { imageIsOurs: true },
  );
  assert.deepEqual(puts.map((p) => p.path), ['/workspace'], 'a read-only root takes files only into its volumes');
  const got = (await byPath(puts)).get('/workspace')!;
  assert.equal(got.get('a.txt')?.content.toString(), 'hello');
  assert.equal(got.get('src/lib/b.py')?.content.toString(), 'print("b")\n');
  assert.equal(got.get('empty.txt')?.content.length, 0);
  assert.equal(got.get('ünïcödé.txt')?.content.toString(), 'ü');
  assert.equal(got.get(longPath)?.content.toString(), 'far down');
  for (const dir of ['src/', 'src/lib/', 'deep/']) assert.equal(got.get(dir)?.header.type, 'directory', dir);
  for (const [name, e] of got) {
    assert.equal(e.header.uid, 1000, name);
    assert.equal(e.header.gid, 1000, name);
  }
  // Every directory comes before what it holds, so extraction never creates one as root.
  const names = [...got.keys()];
  for (const [i, name] of names.entries()) {
    const parent = name.replace(/[^/]+\/?$/, '');
    if (parent !== '') assert.ok(names.indexOf(parent) < i && names.indexOf(parent) >= 0, `${parent} before ${name}`);
  }
});

test("a Python job's script goes into the run directory, root-owned, outside the workspace", async () => {
  const script = 'import sys\nprint("héllo", file=sys.stderr)\n';
  const spec = ExecutionSpec.fromPartial({ kind: ExecutionKind.EXECUTION_KIND_PYTHON, script });
  const ours = await byPath(await workspaceArchives(spec, { imageIsOurs: true, workspaceOnHost: true }));
  assert.deepEqual([...ours.keys()], ['/opt/paddock/run']);
  const main = ours.get('/opt/paddock/run')!.get('main.py');
  assert.ok(main);
  assert.equal(main.content.toString('utf8'), script);
  assert.equal(main.header.uid, 0);

  // Into another image's writable root: its directories are made on the way, root-owned.
  const other = (await byPath(await workspaceArchives(spec, { imageIsOurs: false }))).get('/')!;
  assert.deepEqual([...other.keys()], ['workspace/', 'opt/', 'opt/paddock/', 'opt/paddock/run/', 'opt/paddock/run/main.py']);
  assert.equal(other.get('opt/paddock/run/')?.header.uid, 0);
  assert.equal(other.get('workspace/')?.header.uid, 1000);
});

test("an agent's workflow, prompt and repository token go into the root-owned run directory; the job's user can read the prompt and token", async () => {
  const got = (await byPath(await workspaceArchives(agent({ repoUrl: 'https://git.example/r.git', repoToken: 'ghp_x' }), { imageIsOurs: true }))).get('/opt/paddock/run')!;
  assert.deepEqual([...got.keys()].sort(), ['prompt', 'secrets/', 'secrets/repo-token', 'workflow.sh']);
  assert.match(got.get('workflow.sh')!.content.toString(), /paddock-task/);
  assert.equal(got.get('workflow.sh')!.header.uid, 0);
  assert.equal(got.get('secrets/')!.header.uid, 0, 'the job cannot write into the run directory');
  assert.equal(got.get('prompt')!.content.toString(), 'Say hi');
  for (const name of ['prompt', 'secrets/repo-token']) {
    assert.equal(got.get(name)!.header.uid, 1000, name);
    assert.equal(got.get(name)!.header.mode, 0o400, name);
  }
});

test('the SSH password enters the container only as a SHA-512 crypt hash of it, with a fresh salt each time', async () => {
  const password = 'correct-horse-battery-staple';
  const hashOf = async () => {
    const got = (await byPath(await workspaceArchives(agent(), { imageIsOurs: true, sshPassword: password }))).get('/opt/paddock/run')!;
    for (const [name, e] of got) assert.ok(!e.content.toString().includes(password), `${name} holds the password`);
    const entry = got.get('secrets/ssh-password-hash');
    assert.ok(entry, [...got.keys()].join(', '));
    assert.equal(entry.header.uid, 1000, 'sshd runs as uid 1000 and reads it');
    return entry.content.toString();
  };
  const first = await hashOf();
  const [, scheme, salt] = first.split('$');
  assert.equal(scheme, '6');
  assert.match(salt ?? '', /^[./0-9A-Za-z]{16}$/);
  assert.equal(sha512Crypt(password, salt ?? ''), first, 'crypt(3) of the password with that salt');
  assert.notEqual(sha512Crypt('wrong', salt ?? ''), first);
  assert.notEqual(await hashOf(), first);
});

test("SHA-512 crypt gives crypt(3)'s answers (the specification's vectors, and `openssl passwd -6`'s)", () => {
  assert.equal(sha512Crypt('Hello world!', 'saltstring'), '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1');
  // A salt longer than 16 characters is cut to 16.
  assert.equal(
    sha512Crypt('a very much longer text to encrypt.  This one even stretches over morethan one line.', 'abcdefghijklmnopqrstuvwxyz'),
    '$6$abcdefghijklmnop$FNtTT.mQRdh40pvJiXvOP6sFhiPiZFfqgpasSaIz5NDxqQYkMtUCqlSX1YJ3fF12hJK8jFO5LT1VrCcZSOUQ5/',
  );
  assert.equal(sha512Crypt('we have a short salt string but not a short password', 'short'), '$6$short$qmfj2meTBr5G2EAGIJ4vjX7RpefsD4JzpEyTAeEUJdzdxlBS6pe8gdMHm5zFftaFSj/2p2bjBwyVS9ZhWpLZt.');
});

test('a path that would leave the workspace is refused', async () => {
  for (const bad of ['../etc/passwd', '/etc/passwd', 'a/../../b', './a', 'a//b', 'a/']) {
    await assert.rejects(workspaceArchives(shell({ [bad]: 'x' }), { imageIsOurs: true }), /must be relative and stay inside the workspace/, bad);
  }
});
