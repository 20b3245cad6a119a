// One execution end to end through the REST API, against the real engine, NATS and PostgreSQL.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startPaddock, type RunningPaddock } from '@paddock/testkit';
import { buildForeignImage, containersOf, docker, readZip, waitFor } from '../src/index.js';

let paddock: RunningPaddock;

before(async () => {
  paddock = await startPaddock();
});

after(async () => {
  await paddock?.stop();
});

const SCRIPT = `
import json, pathlib
numbers = [int(line) for line in pathlib.Path('data/numbers.txt').read_text().split()]
total = sum(n * n for n in numbers)
out = pathlib.Path('results')
out.mkdir()
(out / 'summary.json').write_text(json.dumps({'count': len(numbers), 'sum_of_squares': total}))
print(f'sum of squares = {total}')
`;

test('a Python job reads its files, writes results and prints a computed value; its ZIP holds the workspace', async () => {
  const created = await paddock.admin.submit({ kind: 'python', script: SCRIPT, files: { 'data/numbers.txt': '3\n4\n12\n' } });
  assert.equal(created.state, 'queued');
  assert.match(created.id, /^[0-9a-z]{22}$/);

  const followed = await paddock.admin.logs(created.id, true);
  assert.match(followed, /sum of squares = 169\n/);

  const final = await paddock.admin.waitFinal(created.id);
  assert.equal(final.state, 'completed');
  assert.equal(final.exitCode, 0);
  assert.equal(final.error, null);
  assert.ok(final.startedAt && final.finishedAt && final.startedAt <= final.finishedAt);

  assert.equal(await paddock.admin.logs(created.id), followed);

  const zip = await paddock.admin.artifacts(created.id);
  assert.equal(zip.status, 200);
  const archive = await readZip(zip.bytes);
  try {
    assert.ok(archive.names.includes('data/numbers.txt'), archive.names.join(', '));
    assert.deepEqual(JSON.parse(await archive.read('results/summary.json')), { count: 3, sum_of_squares: 169 });
  } finally {
    await archive.close();
  }
  assert.deepEqual(await containersOf(created.id), [], 'the container is removed at the end');
});

test('the container is isolated: non-root, no capabilities, no network, limits and labels set', async () => {
  const { id } = await paddock.admin.submit({
    kind: 'shell',
    command: 'id -u; grep CapEff /proc/self/status; ls /sys/class/net; echo ready; sleep 30',
    resources: { cpus: 0.5, memoryMb: 128 },
  });
  await waitFor('the job to start', async () => (await paddock.admin.logs(id)).includes('ready'));
  const [info] = await containersOf(id);
  assert.ok(info, 'a container carries the execution id label');
  const inspect = await docker.getContainer(info.Id).inspect();
  assert.equal(inspect.Config.Labels['io.paddock.owner'], (await paddock.admin.get(id)).owner);
  assert.equal(inspect.HostConfig.NanoCpus, 500_000_000);
  assert.equal(inspect.HostConfig.Memory, 128 * 1024 * 1024);
  assert.ok((inspect.HostConfig.PidsLimit ?? 0) > 0);
  assert.deepEqual(inspect.HostConfig.CapDrop, ['ALL']);
  assert.ok(inspect.HostConfig.SecurityOpt?.includes('no-new-privileges'));
  assert.equal(inspect.HostConfig.NetworkMode, 'none');

  const log = await paddock.admin.logs(id);
  assert.match(log, /^1000\n/);
  assert.match(log, /CapEff:\s+0000000000000000\n/);
  assert.match(log, /\nlo\nready\n/, 'only the loopback interface');

  const cancel = await paddock.admin.request('POST', `/api/v1/executions/${id}/cancel`);
  assert.equal(cancel.status, 202);
  assert.equal((await paddock.admin.waitFinal(id, 30_000)).state, 'cancelled');
});

test('a non-zero exit fails the execution and keeps the exit code', async () => {
  const { id } = await paddock.admin.submit({ kind: 'shell', command: 'echo before; exit 3' });
  const final = await paddock.admin.waitFinal(id);
  assert.equal(final.state, 'failed');
  assert.equal(final.exitCode, 3);
  assert.match(final.error ?? '', /exited with code 3/);
  assert.match(await paddock.admin.logs(id), /before/);
});

test('a timeout fails the execution with a reason', async () => {
  const { id } = await paddock.admin.submit({ kind: 'shell', command: 'echo started; sleep 60', timeoutS: 1 });
  const final = await paddock.admin.waitFinal(id, 30_000);
  assert.equal(final.state, 'failed');
  assert.match(final.error ?? '', /timed out.*1s limit/);
  assert.notEqual(final.exitCode, null);
  assert.deepEqual(await containersOf(id), []);
});

test('running out of memory fails the execution with a reason', async () => {
  const { id } = await paddock.admin.submit({
    kind: 'python',
    script: 'blocks = []\nwhile True:\n    blocks.append(bytearray(16 * 1024 * 1024))\n',
    resources: { memoryMb: 64 },
  });
  const final = await paddock.admin.waitFinal(id, 60_000);
  assert.equal(final.state, 'failed');
  assert.equal(final.exitCode, 137);
  assert.match(final.error ?? '', /out of memory.*64 MiB/);
});

test('cancel stops a running job within seconds; a second cancel is a conflict', async () => {
  const { id } = await paddock.admin.submit({ kind: 'shell', command: 'echo running; sleep 120' });
  await paddock.admin.waitState(id, 'executing');
  const started = Date.now();
  const cancel = await paddock.admin.request('POST', `/api/v1/executions/${id}/cancel`);
  assert.equal(cancel.status, 202);
  const final = await paddock.admin.waitFinal(id, 30_000);
  assert.equal(final.state, 'cancelled');
  assert.ok(Date.now() - started < 15_000, `cancelled after ${Date.now() - started} ms`);
  const again = await paddock.admin.request('POST', `/api/v1/executions/${id}/cancel`);
  assert.equal(again.status, 409);
  assert.equal(again.body.error.code, 'conflict');
  assert.deepEqual(await containersOf(id), []);
});

test('the artifacts ZIP is refused with 409 until the execution ends', async () => {
  const { id } = await paddock.admin.submit({ kind: 'shell', command: 'sleep 30' });
  const early = await paddock.admin.artifacts(id);
  assert.equal(early.status, 409);
  await paddock.admin.request('POST', `/api/v1/executions/${id}/cancel`);
  await paddock.admin.waitFinal(id, 30_000);
});

test('the list filters by state and pages with a cursor', async () => {
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await paddock.admin.submit({ kind: 'shell', command: `echo ${i}` })).id);
  for (const id of ids) await paddock.admin.waitFinal(id);
  const page1 = await paddock.admin.request('GET', '/api/v1/executions?state=completed&limit=2');
  assert.equal(page1.status, 200);
  assert.equal(page1.body.items.length, 2);
  assert.ok(page1.body.items.every((e: { state: string }) => e.state === 'completed'));
  assert.equal(typeof page1.body.nextCursor, 'string');
  const page2 = await paddock.admin.request('GET', `/api/v1/executions?state=completed&limit=2&cursor=${page1.body.nextCursor}`);
  const seen = [...page1.body.items, ...page2.body.items].map((e: { id: string }) => e.id);
  assert.equal(new Set(seen).size, seen.length, 'no execution on two pages');
  for (const id of ids) assert.ok(seen.includes(id) || page2.body.nextCursor !== null);
});

test('the seed-compatible paths schedule, report, list, cancel and download', async () => {
  const scheduled = await paddock.admin.request('POST', '/schedule', { command: 'echo compat > out.txt; cat out.txt' });
  assert.equal(scheduled.status, 201, JSON.stringify(scheduled.body));
  const id = scheduled.body.id as string;
  await paddock.admin.waitFinal(id);
  const status = await paddock.admin.request('GET', `/status/${id}`);
  assert.equal(status.status, 200);
  assert.equal(status.body.state, 'completed');
  const jobs = await paddock.admin.request('GET', '/jobs');
  assert.equal(jobs.status, 200);
  assert.ok(JSON.stringify(jobs.body).includes(id));
  const download = await fetch(`${paddock.url}/download/${id}`, { headers: { authorization: `Bearer ${paddock.admin.token}` } });
  assert.equal(download.status, 200);
  const archive = await readZip(Buffer.from(await download.arrayBuffer()));
  try {
    assert.equal(await archive.read('out.txt'), 'compat\n');
  } finally {
    await archive.close();
  }

  const script = await paddock.admin.request('POST', '/schedule', { script: 'print(6 * 7)' });
  assert.equal(script.status, 201);
  await paddock.admin.waitFinal(script.body.id);
  assert.equal(await paddock.admin.logs(script.body.id), '42\n');

  const long = await paddock.admin.request('POST', '/schedule', { command: 'sleep 60' });
  await paddock.admin.waitState(long.body.id, 'executing');
  assert.equal((await paddock.admin.request('POST', `/cancel/${long.body.id}`)).status, 202);
  assert.equal((await paddock.admin.waitFinal(long.body.id, 30_000)).state, 'cancelled');

  const both = await paddock.admin.request('POST', '/schedule', { command: 'true', script: 'pass' });
  assert.equal(both.status, 400);
  assert.match(both.body.error.message, /exactly one of "command", "script" or "prompt"/);
});

test('a missing image fails the execution with a reason', async () => {
  const { id } = await paddock.admin.submit({ kind: 'shell', command: 'true', image: 'paddock/does-not-exist:latest' });
  const final = await paddock.admin.waitFinal(id);
  assert.equal(final.state, 'failed');
  assert.match(final.error ?? '', /does-not-exist/);
});

test('any image in the engine runs a shell job: no Paddock user, entrypoint or workspace in it', async () => {
  const image = 'example.test/foreign-tools:1';
  await buildForeignImage(image);
  const { id } = await paddock.admin.submit({ kind: 'shell', image, command: 'id -u; echo made-here > out.txt; cat in.txt', files: { 'in.txt': 'given\n' } });
  const final = await paddock.admin.waitFinal(id);
  assert.equal(final.state, 'completed', `${final.error}\n${await paddock.admin.logs(id)}`);
  assert.equal(await paddock.admin.logs(id), '1000\ngiven\n');
  const archive = await readZip((await paddock.admin.artifacts(id)).bytes);
  try {
    assert.equal(await archive.read('out.txt'), 'made-here\n');
  } finally {
    await archive.close();
  }
});
