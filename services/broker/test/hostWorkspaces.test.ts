// Workspaces kept on the broker's host: filled for the job's user, zipped without trusting what the job left.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, symlink, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { saveDirectoryArtifacts } from '../src/artifacts.js';
import { HostWorkspaces } from '../src/providers/docker/hostWorkspaces.js';

let root: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'paddock-ws-'));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

test('a workspace holds the request files, owned by the job user, and replaces what an earlier attempt left', async () => {
  const workspaces = new HostWorkspaces(join(root, 'workspaces'));
  const dir = await workspaces.prepare('ex1', { 'a/b/c.txt': Buffer.from('deep'), 'top.txt': Buffer.from('top') }, 0);
  assert.equal(await readFile(join(dir, 'a/b/c.txt'), 'utf8'), 'deep');
  for (const path of ['', 'a', 'a/b', 'a/b/c.txt', 'top.txt']) {
    const info = await stat(join(dir, path));
    assert.deepEqual([info.uid, info.gid], [1000, 1000], path || '.');
  }
  await writeFile(join(dir, 'stale.txt'), 'from before');
  await workspaces.prepare('ex1', {}, 0);
  await assert.rejects(stat(join(dir, 'stale.txt')));
  await workspaces.remove('ex1');
  await assert.rejects(stat(dir));
});

test('paths that would leave the workspace, and ids that are not folder names, are refused', async () => {
  const workspaces = new HostWorkspaces(join(root, 'workspaces'));
  for (const path of ['../escape', 'a/../../b', '/etc/x', 'a//b', './a']) {
    await assert.rejects(workspaces.prepare('ex2', { [path]: Buffer.from('x') }, 0), /must be relative and stay inside/, path);
  }
  assert.throws(() => workspaces.pathOf('../etc'), /cannot name a folder/);
});

test('the ZIP of a workspace leaves out symbolic links, so a job cannot make it read host files', async () => {
  const workspace = join(root, 'job');
  await mkdir(join(workspace, 'out'), { recursive: true });
  await writeFile(join(workspace, 'out', 'result.txt'), 'result');
  await symlink('/etc/passwd', join(workspace, 'passwd'));
  await symlink('/etc', join(workspace, 'etc'));
  const artifacts = join(root, 'artifacts');
  const { path, files } = await saveDirectoryArtifacts(workspace, artifacts, 'ex3');
  assert.equal(files, 1);
  const names = execFileSync('unzip', ['-Z1', path], { encoding: 'utf8' }).trim().split('\n');
  assert.deepEqual(names.sort(), ['out/', 'out/result.txt']);
  assert.equal(execFileSync('unzip', ['-p', path, 'out/result.txt'], { encoding: 'utf8' }), 'result');
});
