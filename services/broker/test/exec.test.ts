// Exec over gRPC as the gateway calls it: a slow reader slows the command instead of filling the broker's
// memory, a caller that goes away ends the command, and bytes arrive as they were written.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { ClientReadableStream } from '@grpc/grpc-js';
import type { BrokerClient, ExecOutput } from '@paddock/proto';
import type { StartedBroker } from '../src/broker.js';
import { brokerClientAs } from './support/brokerClient.js';
import { shellSpec } from './support/specs.js';
import { setUpTestBroker, type TestBroker } from './support/testBroker.js';

const MiB = 1024 * 1024;
let t: TestBroker;
let broker: StartedBroker;
let client: BrokerClient;
const executionId = randomUUID();

before(async () => {
  t = await setUpTestBroker('exec');
  broker = await t.start();
  client = await brokerClientAs('gateway', broker.grpcAddress, t.env);
  await broker.instances.launch({ executionId, ownerId: 'gina', spec: shellSpec('sleep 300', { timeoutMs: 300_000 }) });
});
after(async () => {
  client?.close();
  await t?.stop();
});

/** Runs a command to its end; its stdout and exit code. */
async function run(cmd: string[]): Promise<{ stdout: Buffer; exitCode: number | undefined }> {
  const parts: Buffer[] = [];
  let exitCode: number | undefined;
  for await (const out of client.exec({ executionId, cmd, stdin: Buffer.alloc(0) }) as AsyncIterable<ExecOutput>) {
    if (out.exitCode !== undefined) exitCode = out.exitCode;
    else parts.push(Buffer.from(out.data));
  }
  return { stdout: Buffer.concat(parts), exitCode };
}

/** The command lines of the processes in the instance. */
async function processes(): Promise<string[]> {
  const { stdout } = await run(['sh', '-c', 'for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null; echo; done']);
  return stdout.toString().split('\n').filter((l) => l.trim() !== '');
}

test('a reader that stops reading stops the command: 50 MB of output does not pile up in the broker', async () => {
  const totalBytes = 50 * MiB;
  const call = client.exec({ executionId, cmd: ['sh', '-c', `head -c ${totalBytes} /dev/zero; touch /tmp/all-written`], stdin: Buffer.alloc(0) }) as ClientReadableStream<ExecOutput>;
  let received = 0;
  let exitCode: number | undefined;
  const ended = new Promise<void>((resolve, reject) => {
    call.on('data', (out: ExecOutput) => {
      received += out.data.length;
      if (out.exitCode !== undefined) exitCode = out.exitCode;
    });
    call.on('end', resolve);
    call.on('error', reject);
  });
  // Read a little, then stop reading for a while, as a slow client on a slow link does.
  await new Promise<void>((resolve) => call.once('data', () => resolve()));
  call.pause();
  const rssBefore = process.memoryUsage().rss;
  await new Promise((r) => setTimeout(r, 3_000));
  const rssGrowth = process.memoryUsage().rss - rssBefore;
  const { exitCode: writtenAll } = await run(['test', '-e', '/tmp/all-written']);
  assert.equal(writtenAll, 1, 'the command is still blocked on its output while nobody reads it');
  assert.ok(received < 20 * MiB, `only what the pipes hold was sent: ${received} bytes`);
  assert.ok(rssGrowth < 30 * MiB, `the broker and its client grew by ${Math.round(rssGrowth / MiB)} MiB while 50 MiB waited`);
  call.resume();
  await ended;
  assert.equal(received, totalBytes);
  assert.equal(exitCode, 0);
});

test("a caller that cancels ends the command and what it started: neither is left in the instance", async () => {
  const marker = `marker-${randomUUID().slice(0, 8)}`;
  const call = client.exec({ executionId, cmd: ['sh', '-c', `echo ready; sleep 301 & sleep 302; echo ${marker}`], stdin: Buffer.alloc(0) }) as ClientReadableStream<ExecOutput>;
  call.on('error', () => {});
  await new Promise<void>((resolve) => call.once('data', () => resolve()));
  assert.ok((await processes()).some((p) => p.startsWith('sleep 302')), 'the command runs');
  call.cancel();
  const deadline = Date.now() + 5_000;
  let left = await processes();
  while (left.some((p) => /^sleep 30[12]/.test(p)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    left = await processes();
  }
  assert.deepEqual(left.filter((p) => /^sleep 30[12]/.test(p)), []);
  assert.ok(left.some((p) => p.startsWith('sleep 300')), 'the job itself runs on');
});

test('multibyte UTF-8 survives chunking: the bytes arrive exactly as the command wrote them', async () => {
  // ~600 KB of two-, three- and four-byte characters, much more than one chunk.
  const unit = 'é€𝄞ü✓';
  const { stdout, exitCode } = await run(['python3', '-c', `import sys; sys.stdout.write(${JSON.stringify(unit)} * 50000)`]);
  assert.equal(exitCode, 0);
  assert.equal(stdout.toString('utf8'), unit.repeat(50000));
});

test('stdin reaches the command, and its exit code comes last', async () => {
  const parts: Buffer[] = [];
  let exitCode: number | undefined;
  for await (const out of client.exec({ executionId, cmd: ['sh', '-c', 'tr a-z A-Z; exit 5'], stdin: Buffer.from('hello') }) as AsyncIterable<ExecOutput>) {
    if (out.exitCode !== undefined) exitCode = out.exitCode;
    else parts.push(Buffer.from(out.data));
  }
  assert.equal(Buffer.concat(parts).toString(), 'HELLO');
  assert.equal(exitCode, 5);
});
