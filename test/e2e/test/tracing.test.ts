// One execution is one trace: the gateway's span is the root, the scheduler continues it from the bus
// message and the broker from the gRPC call, as seen by a real OTLP/HTTP receiver.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startPaddock, type RunningPaddock } from '@paddock/testkit';
import { waitFor } from '../src/index.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../src/otlp.js';

const SERVICES = ['paddock-gateway', 'paddock-scheduler', 'paddock-broker'] as const;

let receiver: OtlpReceiver;
let paddock: RunningPaddock;

before(async () => {
  receiver = await startOtlpReceiver();
  paddock = await startPaddock({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url } });
});

after(async () => {
  await paddock?.stop();
  await receiver?.close();
});

function describe(span: ReceivedSpan): string {
  return `${span.service} "${span.name}" trace=${span.traceId} span=${span.spanId} parent=${span.parentSpanId || '(none)'}`;
}

/** The spans from `span` up to its root, as far as the parents were received. */
function ancestry(span: ReceivedSpan, all: readonly ReceivedSpan[]): ReceivedSpan[] {
  const chain = [span];
  for (let current = span; current.parentSpanId !== ''; ) {
    const parent = all.find((s) => s.spanId === current.parentSpanId && s.traceId === current.traceId);
    if (parent === undefined || chain.includes(parent)) break;
    chain.push(parent);
    current = parent;
  }
  return chain;
}

test("an execution's spans from gateway, scheduler and broker form one trace rooted at the gateway", async () => {
  const { id } = await paddock.admin.submit({ kind: 'shell', command: 'echo traced' });
  const final = await paddock.admin.waitFinal(id, 90_000);
  assert.equal(final.state, 'completed');

  const ofExecution = () => receiver.spans().filter((s) => s.attributes['paddock.execution_id'] === id);
  await waitFor(
    'spans of the execution from all three services',
    async () => SERVICES.every((service) => ofExecution().some((s) => s.service === service)),
    15_000,
    200,
  ).catch((err: Error) => {
    const refused = receiver.refused();
    if (refused.length > 0) throw new Error(`the exporters sent ${[...new Set(refused)].join(', ')} instead of OTLP/JSON`, { cause: err });
    const seen = ofExecution().map(describe).join('\n  ');
    throw new Error(`${err.message}; spans of ${id} received:\n  ${seen || '(none)'}`, { cause: err });
  });

  const all = receiver.spans();
  const mine = ofExecution();
  // Each service's first span about the execution is where it picked up the trace.
  const first = Object.fromEntries(
    SERVICES.map((service) => [
      service,
      mine.filter((s) => s.service === service).sort((a, b) => (BigInt(a.startTimeUnixNano) < BigInt(b.startTimeUnixNano) ? -1 : 1))[0]!,
    ]),
  ) as Record<(typeof SERVICES)[number], ReceivedSpan>;
  const report = `spans of ${id}:\n  ${mine.map(describe).join('\n  ')}`;

  const gateway = first['paddock-gateway'];
  assert.equal(gateway.parentSpanId, '', `the gateway's span is the root of the trace\n${report}`);
  for (const service of SERVICES) {
    assert.equal(first[service].traceId, gateway.traceId, `${describe(first[service])} is not in the gateway's trace ${gateway.traceId}\n${report}`);
  }

  const chain = ancestry(first['paddock-broker'], all);
  const top = chain[chain.length - 1]!;
  assert.equal(
    top.spanId,
    gateway.spanId,
    `the broker's span does not lead up to the gateway's: the chain stops at ${describe(top)}` +
      `${top.parentSpanId === '' ? ' (a root)' : ' (its parent was never received)'}\nchain:\n  ${chain.map(describe).join('\n  ')}\n${report}`,
  );
  assert.ok(
    chain.some((s) => s.service === 'paddock-scheduler'),
    `the broker's span leads to the gateway's through the scheduler:\n  ${chain.map(describe).join('\n  ')}`,
  );
  // Not only the first ones: a span about the execution outside its trace (a state event published
  // without the context) is a break a user of the traces sees as a second, orphaned trace.
  for (const s of mine) assert.equal(s.traceId, gateway.traceId, `every span of the execution is in its one trace, but ${describe(s)} is not\n${report}`);
});

test('executions submitted together each keep their own trace', async () => {
  const ids = (await Promise.all([0, 1, 2, 3, 4, 5].map((i) => paddock.admin.submit({ kind: 'shell', command: `echo ${i}` })))).map((e) => e.id);
  for (const id of ids) assert.equal((await paddock.admin.waitFinal(id, 90_000)).state, 'completed');
  const spansOf = (id: string) => receiver.spans().filter((s) => s.attributes['paddock.execution_id'] === id);
  // The gateway's consumer of the final state event is the last span each execution makes.
  await waitFor(
    'the spans of every execution',
    async () => ids.every((id) => spansOf(id).filter((s) => s.service === 'paddock-gateway' && s.name === 'consume execution.state').length >= 3),
    15_000,
    200,
  );

  const strays: string[] = [];
  for (const id of ids) {
    const root = spansOf(id).find((s) => s.service === 'paddock-gateway' && s.parentSpanId === '');
    assert.ok(root, `the gateway's root span of ${id}:\n  ${spansOf(id).map(describe).join('\n  ')}`);
    for (const s of spansOf(id).filter((x) => x.traceId !== root.traceId)) {
      const parent = receiver.spans().find((x) => x.spanId === s.parentSpanId);
      const from = parent ? `${describe(parent)}, a span of execution ${String(parent.attributes['paddock.execution_id'])}` : s.parentSpanId || 'no parent: a root';
      strays.push(`${id}: ${describe(s)} is outside its trace ${root.traceId}; its parent is ${from}`);
    }
  }
  if (strays.length > 0) assert.fail(`${strays.length} spans are in another execution's trace, or in none:\n${strays.join('\n')}`);
});
