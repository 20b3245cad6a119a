// What an ops dashboard reads: a real Paddock runs a few executions (one completes, one fails, one is
// cancelled while it runs) and is handed two poison messages; then Prometheus's view of the gateway (with
// the admin token), the scheduler and the broker (on their loopback ports) must say what happened.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect, type NatsConnection } from 'nats';
import { topics } from '@paddock/bus';
import { startPaddock, type RunningPaddock } from '@paddock/testkit';
import { waitFor } from '../src/index.js';

let paddock: RunningPaddock;
let nc: NatsConnection;

before(async () => {
  paddock = await startPaddock();
  nc = await connect(paddock.natsOptions('metrics-test'));
});

after(async () => {
  await nc?.close();
  await paddock?.stop();
});

/** One series: its own labels (those of the resource and the scope left out) and its value. */
interface Sample {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const RESOURCE_LABELS = new Set(['service_name', 'otel_scope_name', 'otel_scope_version']);

/** The samples of `name` in a Prometheus text exposition. */
function samples(text: string, name: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) if (!RESOURCE_LABELS.has(key!)) labels[key!] = value!;
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the one series of `name` with these labels, or undefined when it is not there. */
function valueOf(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  return samples(text, name).find((s) => Object.keys(labels).every((k) => s.labels[k] === labels[k]) && Object.keys(s.labels).length === Object.keys(labels).length)?.value;
}

async function scrape(url: string, token?: string): Promise<{ status: number; contentType: string; text: string }> {
  const r = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(10_000) });
  return { status: r.status, contentType: r.headers.get('content-type') ?? '', text: await r.text() };
}

test("the gateway's /metrics is for the admin only: no token 401, a user's token 403, the admin's 200", async () => {
  const created = await paddock.admin.request('POST', '/api/v1/users', { name: 'metrics-viewer' });
  assert.equal(created.status, 201);

  const anonymous = await scrape(`${paddock.url}/metrics`);
  assert.equal(anonymous.status, 401);
  const user = await scrape(`${paddock.url}/metrics`, created.body.token as string);
  assert.equal(user.status, 403);
  assert.doesNotMatch(user.text, /paddock_/);
  const admin = await scrape(`${paddock.url}/metrics`, paddock.admin.token);
  assert.equal(admin.status, 200, admin.text);
  assert.match(admin.contentType, /^text\/plain; version=0\.0\.4/);
});

test('transitions, states, the queue, start phases, running containers and the bus, as Prometheus reads them', async () => {
  const ok = await paddock.admin.submit({ kind: 'shell', command: 'echo fine' });
  const bad = await paddock.admin.submit({ kind: 'shell', command: 'echo broken >&2; exit 3' });
  const long = await paddock.admin.submit({ kind: 'shell', command: 'sleep 60' });
  assert.equal((await paddock.admin.waitFinal(ok.id, 90_000)).state, 'completed');
  assert.equal((await paddock.admin.waitFinal(bad.id, 90_000)).state, 'failed');
  await paddock.admin.waitState(long.id, 'executing', 90_000);

  const brokerId = paddock.env['PADDOCK_BROKER_ID']!;
  const running = await waitFor(
    'the broker to report its running container',
    async () => {
      const broker = await scrape(paddock.metricsUrls.broker);
      return valueOf(broker.text, 'paddock_broker_containers_running', { broker: brokerId }) === 1 ? broker : undefined;
    },
    15_000,
    250,
  ).catch(async (err: Error) => {
    throw new Error(`${err.message}; the broker's scrape:\n${(await scrape(paddock.metricsUrls.broker)).text}`, { cause: err });
  });
  assert.match(running.text, /service_name="paddock-broker"/);

  assert.equal((await paddock.admin.request('POST', `/api/v1/executions/${long.id}/cancel`)).status, 202);
  assert.equal((await paddock.admin.waitFinal(long.id, 60_000)).state, 'cancelled');

  // Two poison messages, as a broken or outdated publisher would send them: a request without a spec (it can
  // never run: failed at once and dead-lettered) and a cancel of an execution nobody requested (retried).
  const js = nc.jetstream();
  const poison = `metrics-poison-${Date.now()}`;
  await js.publish(
    topics.executionRequested.subject(poison),
    topics.executionRequested.type.encode({ executionId: poison, ownerId: 'nobody', spec: undefined, requestedAtMs: Date.now() }).finish(),
  );
  const stray = `metrics-stray-${Date.now()}`;
  await js.publish(
    topics.executionCancel.subject(stray),
    topics.executionCancel.type.encode({ executionId: stray, requestedBy: 'nobody', requestedAtMs: Date.now() }).finish(),
  );

  const scheduler = await waitFor(
    'the scheduler to count the poison request and a redelivered cancel',
    async () => {
      const s = await scrape(paddock.metricsUrls.scheduler);
      const dead = valueOf(s.text, 'paddock_bus_dead_letters_total', { consumer: 'scheduler-requested' });
      const again = valueOf(s.text, 'paddock_bus_redeliveries_total', { consumer: 'scheduler-cancel' }) ?? 0;
      return dead === 1 && again >= 1 ? s : undefined;
    },
    30_000,
    250,
  ).catch(async (err: Error) => {
    throw new Error(`${err.message}; the scheduler's scrape:\n${(await scrape(paddock.metricsUrls.scheduler)).text}`, { cause: err });
  });
  const text = scheduler.text;
  const report = `\nthe scheduler's scrape:\n${text}`;
  assert.match(text, /service_name="paddock-scheduler"/);

  const transitions = Object.fromEntries(
    samples(text, 'paddock_executions_transitions_total').map((s) => [`${s.labels['from_state']}->${s.labels['state']}`, s.value]),
  );
  assert.deepEqual(
    transitions,
    {
      'none->queued': 3,
      'queued->provisioning': 3,
      'provisioning->executing': 3,
      'executing->completed': 1,
      'executing->failed': 1,
      'executing->cancelled': 1,
      // The request without a spec: failed as it arrived.
      'none->failed': 1,
    },
    `each transition that happened, counted once${report}`,
  );

  const byState = Object.fromEntries(samples(text, 'paddock_executions').map((s) => [s.labels['state'], s.value]));
  assert.deepEqual(
    byState,
    { queued: 0, provisioning: 0, executing: 0, awaiting_review: 0, completed: 1, failed: 2, cancelled: 1 },
    `executions by state, every state present${report}`,
  );
  assert.equal(valueOf(text, 'paddock_queue_depth'), 0, report);

  assert.equal(valueOf(text, 'paddock_queue_wait_duration_count'), 3, `each placed execution's wait in the queue${report}`);
  for (const phase of ['queued_to_provisioning', 'provisioning_to_executing']) {
    assert.equal(valueOf(text, 'paddock_execution_start_duration_count', { phase }), 3, `phase ${phase}${report}`);
    const sumMs = valueOf(text, 'paddock_execution_start_duration_sum', { phase }) ?? -1;
    assert.ok(sumMs >= 0 && sumMs < 3 * 90_000, `phase ${phase} took ${sumMs} ms in all${report}`);
  }
  const bucketsOk = samples(text, 'paddock_execution_start_duration_bucket').filter((s) => s.labels['phase'] === 'provisioning_to_executing');
  assert.equal(bucketsOk.find((s) => s.labels['le'] === '+Inf')?.value, 3, `histogram buckets end at the count${report}`);

  // Once every container is gone, the gauge says so.
  await waitFor(
    'the broker to report no running container',
    async () => valueOf((await scrape(paddock.metricsUrls.broker)).text, 'paddock_broker_containers_running', { broker: brokerId }) === 0,
    30_000,
    250,
  );

  // The broker times the phases it sees: creating each container, and the first output of the two that print.
  const brokerText = (await scrape(paddock.metricsUrls.broker)).text;
  assert.equal(valueOf(brokerText, 'paddock_execution_start_duration_count', { phase: 'container_create' }), 3, `container_create on the broker:\n${brokerText}`);
  assert.equal(valueOf(brokerText, 'paddock_execution_start_duration_count', { phase: 'first_output' }), 2, `first_output on the broker:\n${brokerText}`);

  // The gateway serves its own process's metrics (its errors and its bus consumers'), not the others'.
  const gateway = await scrape(`${paddock.url}/metrics`, paddock.admin.token);
  assert.equal(gateway.status, 200);
  assert.match(gateway.text, /^target_info\{[^}]*service_name="paddock-gateway"/m);
  assert.doesNotMatch(gateway.text, /service_name="paddock-(scheduler|broker)"/, 'each service serves its own metrics');
});
