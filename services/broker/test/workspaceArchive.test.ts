import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { extract, type Header } from 'tar-stream';
import { ExecutionKind, ExecutionSpec } from '@paddock/proto';
import { workspaceArchive } from '../src/providers/docker/workspaceArchive.js';

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

test('nothing to put when the image is ours and the request has no files and no script', async () => {
  assert.equal(await workspaceArchive(shell(), true), null);
});

test('for an image not ours, the archive still makes /workspace, owned by uid 1000', async () => {
  const tar = await workspaceArchive(shell(), false);
  assert.ok(tar);
  const got = await entries(tar);
  assert.deepEqual([...got.keys()], ['workspace/']);
  const ws = got.get('workspace/')!.header;
  assert.equal(ws.type, 'directory');
  assert.equal(ws.uid, 1000);
  assert.equal(ws.gid, 1000);
});

test("the request's files land at their paths under workspace/, with their content, owned by uid 1000", async () => {
  const longPath = `${'deep/'.repeat(25)}leaf.txt`;
  const tar = await workspaceArchive(
    shell({ 'a.txt': 'hello', 'src/lib/b.py': 'print("b")\n', 'empty.txt': '', 'ünïcödé.txt': 'ü', [longPath]: 'far down' }),
    true,
  );
  assert.ok(tar);
  const got = await entries(tar);
  assert.equal(got.get('workspace/a.txt')?.content.toString(), 'hello');
  assert.equal(got.get('workspace/src/lib/b.py')?.content.toString(), 'print("b")\n');
  assert.equal(got.get('workspace/empty.txt')?.content.length, 0);
  assert.equal(got.get('workspace/ünïcödé.txt')?.content.toString(), 'ü');
  assert.equal(got.get(`workspace/${longPath}`)?.content.toString(), 'far down');
  for (const dir of ['workspace/', 'workspace/src/', 'workspace/src/lib/', 'workspace/deep/']) {
    assert.equal(got.get(dir)?.header.type, 'directory', dir);
  }
  for (const [name, e] of got) {
    if (!name.startsWith('workspace/')) continue;
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

test("a Python job's script is put at /opt/paddock/main.py, root-owned, outside the workspace", async () => {
  const script = 'import sys\nprint("héllo", file=sys.stderr)\n';
  const tar = await workspaceArchive(ExecutionSpec.fromPartial({ kind: ExecutionKind.EXECUTION_KIND_PYTHON, script }), true);
  assert.ok(tar);
  const got = await entries(tar);
  const main = got.get('opt/paddock/main.py');
  assert.ok(main, `entries: ${[...got.keys()].join(', ')}`);
  assert.equal(main.content.toString('utf8'), script);
  assert.equal(main.header.uid, 0);
  assert.equal(got.get('workspace/')?.header.uid, 1000);
});

test('a path that would leave the workspace is refused', async () => {
  for (const bad of ['../etc/passwd', '/etc/passwd', 'a/../../b', './a', 'a//b', 'a/']) {
    await assert.rejects(workspaceArchive(shell({ [bad]: 'x' }), true), /must be relative and stay inside the workspace/, bad);
  }
});
