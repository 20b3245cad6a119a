// The row is the promise: a request accepted while NATS is down is still answered 201, and the outbox
// relay of a running gateway puts it on the bus once NATS is back, exactly once.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Bus, topics } from '@paddock/bus';
import { ExecutionKind, ExecutionRequested } from '@paddock/proto';
import { startGateway } from '../src/gateway.js';
import { startTestStack, type TestStack } from './testStack.js';

let stack: TestStack;
/** How long POST /api/v1/executions took while NATS was down, measured by the first test. */
let answeredWhileDownInMs: number | undefined;

before(async () => {
  stack = await startTestStack();
});
after(async () => {
  await stack?.stop();
});

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('a request accepted while NATS is down is answered 201 and published once NATS is back', { timeout: 30_000 }, async () => {
  const gateway = await startGateway(stack.config(), stack.log);
  let reader: Bus | undefined;
  try {
    const token = (await readFile(join(stack.home, 'admin-token'), 'utf8')).trim();
    const auth = { authorization: `Bearer ${token}` };

    await stack.nats.stop();
    const startedMs = Date.now();
    const created = await gateway.app.inject({ method: 'POST', url: '/api/v1/executions', headers: auth, payload: { kind: 'shell', command: 'echo from the outbox' } });
    answeredWhileDownInMs = Date.now() - startedMs;
    assert.equal(created.statusCode, 201, created.body);
    const id = created.json<{ id: string }>().id;

    const shown = await gateway.app.inject({ method: 'GET', url: `/api/v1/executions/${id}`, headers: auth });
    assert.equal(shown.statusCode, 200);
    assert.equal(shown.json<{ state: string }>().state, 'queued');

    // The testkit's stop() also removes the server's store, so it comes back empty; the reader's
    // connect creates the streams again, as every service does when it connects.
    await stack.nats.restart();
    reader = await Bus.connect({ url: stack.nats.url, name: 'test-reader', log: stack.log });
    const subject = topics.executionRequested.subject(id);
    const stored = await until('the request on the stream', () =>
      reader!.jsm.streams.getMessage('PADDOCK_EXECUTIONS', { last_by_subj: subject }).then(
        (m) => m,
        () => undefined,
      ),
    );
    const message = ExecutionRequested.decode(stored.data);
    assert.equal(message.executionId, id);
    assert.equal(message.spec?.kind, ExecutionKind.EXECUTION_KIND_SHELL);
    assert.equal(message.spec?.command, 'echo from the outbox');
    assert.equal(message.requestedAtMs, new Date(created.json<{ createdAt: string }>().createdAt).getTime());

    // Two more turns of the relay (every 2 s) must not publish it again.
    await new Promise((r) => setTimeout(r, 4_500));
    const info = await reader.jsm.streams.info('PADDOCK_EXECUTIONS', { subjects_filter: subject });
    assert.deepEqual(info.state.subjects, { [subject]: 1 });
  } finally {
    await gateway.stop();
    await reader?.drain();
  }
});

test(
  'a request accepted while NATS is down is answered without waiting for NATS',
  () => {
    assert.ok(answeredWhileDownInMs !== undefined, 'the test above measured it');
    assert.ok(answeredWhileDownInMs < 2_000, `POST /api/v1/executions took ${answeredWhileDownInMs} ms while NATS was down`);
  },
);
