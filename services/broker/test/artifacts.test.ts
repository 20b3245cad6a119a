import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import Docker from 'dockerode';
import { artifactPath, saveArtifacts } from '../src/artifacts.js';
import { labels } from '../src/providers/docker/labels.js';
import { removeContainersOf } from './support/containers.js';

const docker = new Docker({ socketPath: process.env['DOCKER_SOCKET'] ?? '/var/run/docker.sock' });
const brokerId = `test-artifacts-${process.pid}`;
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-artifacts-'));
});
after(async () => {
  await removeContainersOf(docker, brokerId);
  await rm(dir, { recursive: true, force: true });
});

/** Runs `script` as the job user in a container of the base image; returns the container, exited. */
async function runInWorkspace(script: string): Promise<{ container: Docker.Container; stdout: string }> {
  const container = await docker.createContainer({
    Image: 'paddock/base:latest',
    Entrypoint: [],
    Cmd: ['/bin/sh', '-c', script],
    User: '1000:1000',
    WorkingDir: '/workspace',
    Labels: { [labels.brokerId]: brokerId, [labels.executionId]: randomUUID() },
    // A TTY makes the log plain text rather than Docker's multiplexed frames.
    Tty: true,
    HostConfig: { NetworkMode: 'none' },
  });
  await container.start();
  const { StatusCode } = (await container.wait()) as { StatusCode: number };
  const stdout = ((await container.logs({ stdout: true, stderr: true })) as unknown as Buffer).toString('utf8');
  assert.equal(StatusCode, 0, stdout);
  return { container, stdout };
}

function unzip(args: string[]): Buffer {
  return execFileSync('unzip', args, { maxBuffer: 64 * 1024 * 1024 });
}

test("a container's /workspace becomes a ZIP with its files and directories, paths relative to the workspace", async () => {
  const { container, stdout: sum } = await runInWorkspace(
    [
      'mkdir -p sub/deep empty',
      'printf hello > a.txt',
      'printf world > sub/deep/b.txt',
      ': > zero.txt',
      'head -c 3000000 /dev/urandom > big.bin',
      'sha256sum big.bin | cut -d" " -f1',
    ].join(' && '),
  );
  const id = `exec-${randomUUID()}`;
  const tar = (await container.getArchive({ path: '/workspace' })) as unknown as Readable;
  const saved = await saveArtifacts(tar, dir, id);

  assert.equal(saved.path, artifactPath(dir, id));
  assert.equal(saved.files, 4);
  const names = unzip(['-Z1', saved.path]).toString('utf8').trim().split('\n').sort();
  assert.deepEqual(names, ['a.txt', 'big.bin', 'empty/', 'sub/', 'sub/deep/', 'sub/deep/b.txt', 'zero.txt']);
  assert.equal(unzip(['-p', saved.path, 'a.txt']).toString(), 'hello');
  assert.equal(unzip(['-p', saved.path, 'sub/deep/b.txt']).toString(), 'world');
  assert.equal(unzip(['-p', saved.path, 'zero.txt']).length, 0);
  execFileSync('unzip', ['-tq', saved.path]);

  const big = unzip(['-p', saved.path, 'big.bin']);
  assert.equal(big.length, 3_000_000);
  assert.equal(createHash('sha256').update(big).digest('hex'), sum.trim());
  assert.deepEqual(await readdir(dir), [`${id}.zip`]);
});

test('an empty workspace gives a valid ZIP with no entries', async () => {
  const { container } = await runInWorkspace('true');
  const id = `exec-${randomUUID()}`;
  const saved = await saveArtifacts((await container.getArchive({ path: '/workspace' })) as unknown as Readable, dir, id);
  assert.equal(saved.files, 0);
  // unzip exits 1 on an archive without entries; what it says tells an empty ZIP from a broken one.
  const listing = spawnSync('unzip', ['-l', saved.path], { encoding: 'utf8' });
  assert.match(listing.stdout + listing.stderr, /zipfile is empty/);
  assert.doesNotMatch(listing.stdout + listing.stderr, /signature not found|cannot find/);
});

test(
  'a tar stream that breaks leaves no ZIP and no temporary file behind',
  async () => {
    const id = `exec-${randomUUID()}`;
    const before = await readdir(dir);
    const broken = new Readable({
      read() {
        this.destroy(new Error('engine went away'));
      },
    });
    await assert.rejects(saveArtifacts(broken, dir, id), /engine went away/);
    assert.deepEqual(await readdir(dir), before);
  },
);
