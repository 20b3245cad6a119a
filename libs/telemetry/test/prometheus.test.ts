import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { MetricsListenError, PROMETHEUS_CONTENT_TYPE, instruments, startTelemetry } from '../src/index.js';

/** One sample line of the Prometheus text exposition format. */
interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses the text format as a Prometheus scraper does: `name{label="value",...} number`, comments aside. */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line of the exposition format: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: m[1]!, labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) });
  }
  return samples;
}

function valueOf(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} matches ${found.length} series`);
  return found[0]?.value;
}

/** The Prometheus name of an instrument: dots become underscores, counters end in _total. */
function promName(spec: { name: string; kind: string }): string {
  const base = spec.name.replace(/\./g, '_');
  return spec.kind === 'counter' ? `${base}_total` : base;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test('recorded values are scraped in the Prometheus format with their names, labels and values', async (t) => {
  const telemetry = startTelemetry({ service: 'paddock-scrape-test', otlpEndpoint: undefined });
  t.after(() => telemetry.shutdown());
  const m = telemetry.metrics;

  m.executionTransitioned('queued', null);
  m.executionTransitioned('queued', null);
  m.executionTransitioned('provisioning', 'queued');
  m.executionTransitioned('failed', 'provisioning');
  m.queueWaited(40);
  m.queueWaited(3_000);
  m.startPhaseTook('container_create', 320);
  m.startPhaseTook('first_output', 12);
  m.busRedelivered('scheduler-requests');
  m.busRedelivered('scheduler-requests');
  m.busDeadLettered('broker-launch');
  m.errorOccurred('EngineUnavailableError');
  m.observeExecutionsByState(async () => ({ queued: 4, executing: 2 }));
  m.observeQueueDepth(() => 7);
  let brokers = [
    { broker: 'b1', running: 3 },
    { broker: 'b2', running: 0 },
  ];
  m.observeRunningContainers(() => brokers);

  const text = await telemetry.metricsHandler();
  const samples = parseExposition(text);
  const transitions = promName(instruments.executionTransitions);
  assert.equal(transitions, 'paddock_executions_transitions_total');
  assert.equal(valueOf(samples, transitions, { state: 'queued', from_state: 'none' }), 2);
  assert.equal(valueOf(samples, transitions, { state: 'provisioning', from_state: 'queued' }), 1);
  assert.equal(valueOf(samples, transitions, { state: 'failed', from_state: 'provisioning' }), 1);
  assert.equal(valueOf(samples, transitions, { state: 'completed' }), undefined, 'no series for a transition that never happened');
  assert.match(text, /# TYPE paddock_executions_transitions_total counter/);
  assert.match(text, /# UNIT paddock_queue_wait_duration ms/);

  const byState = promName(instruments.executionsByState);
  assert.equal(valueOf(samples, byState, { state: 'queued' }), 4);
  assert.equal(valueOf(samples, byState, { state: 'executing' }), 2);
  assert.equal(valueOf(samples, byState, { state: 'cancelled' }), 0, 'a state the callback left out is 0');
  assert.equal(valueOf(samples, 'paddock_queue_depth'), 7);
  assert.equal(valueOf(samples, 'paddock_broker_containers_running', { broker: 'b1' }), 3);
  assert.equal(valueOf(samples, 'paddock_broker_containers_running', { broker: 'b2' }), 0);

  assert.equal(valueOf(samples, 'paddock_queue_wait_duration_count'), 2);
  assert.equal(valueOf(samples, 'paddock_queue_wait_duration_sum'), 3_040);
  assert.equal(valueOf(samples, 'paddock_queue_wait_duration_bucket', { le: '50' }), 1);
  assert.equal(valueOf(samples, 'paddock_queue_wait_duration_bucket', { le: '5000' }), 2);
  assert.equal(valueOf(samples, 'paddock_execution_start_duration_sum', { phase: 'container_create' }), 320);
  assert.equal(valueOf(samples, 'paddock_execution_start_duration_count', { phase: 'first_output' }), 1);
  assert.equal(valueOf(samples, 'paddock_execution_start_duration_bucket', { phase: 'first_output', le: '10' }), 0);
  assert.equal(valueOf(samples, 'paddock_execution_start_duration_bucket', { phase: 'first_output', le: '25' }), 1);

  assert.equal(valueOf(samples, 'paddock_bus_redeliveries_total', { consumer: 'scheduler-requests' }), 2);
  assert.equal(valueOf(samples, 'paddock_bus_dead_letters_total', { consumer: 'broker-launch' }), 1);
  assert.equal(valueOf(samples, 'paddock_errors_total', { kind: 'EngineUnavailableError' }), 1);

  for (const s of samples.filter((s) => s.name.startsWith('paddock_'))) {
    assert.equal(s.labels['service_name'], 'paddock-scrape-test', `${s.name} says which service it comes from`);
  }

  // Counters are cumulative across scrapes; gauges are read again each time, and a broker that is gone
  // is gone from the gauge rather than showing its last count forever.
  m.executionTransitioned('queued', null);
  brokers = [{ broker: 'b1', running: 1 }];
  const again = parseExposition(await telemetry.metricsHandler());
  assert.equal(valueOf(again, transitions, { state: 'queued', from_state: 'none' }), 3);
  assert.equal(valueOf(again, 'paddock_broker_containers_running', { broker: 'b1' }), 1);
  assert.equal(valueOf(again, 'paddock_broker_containers_running', { broker: 'b2' }), undefined);
  assert.equal(valueOf(again, 'paddock_queue_wait_duration_count'), 2);
});

test('an observer that fails leaves its gauge out of that scrape and the rest is served', async (t) => {
  const telemetry = startTelemetry({ service: 'paddock-observer-test', otlpEndpoint: undefined });
  t.after(() => telemetry.shutdown());
  let databaseUp = false;
  telemetry.metrics.observeQueueDepth(async () => {
    if (!databaseUp) throw new Error('connect ECONNREFUSED 127.0.0.1:7432');
    return 2;
  });
  const stop = telemetry.metrics.observeRunningContainers(() => [{ broker: 'b1', running: 1 }]);
  telemetry.metrics.errorOccurred('DatabaseUnavailableError');

  const down = parseExposition(await telemetry.metricsHandler());
  assert.equal(valueOf(down, 'paddock_queue_depth'), undefined);
  assert.equal(valueOf(down, 'paddock_broker_containers_running', { broker: 'b1' }), 1);
  assert.equal(valueOf(down, 'paddock_errors_total', { kind: 'DatabaseUnavailableError' }), 1);

  databaseUp = true;
  stop();
  const up = parseExposition(await telemetry.metricsHandler());
  assert.equal(valueOf(up, 'paddock_queue_depth'), 2);
  assert.equal(valueOf(up, 'paddock_broker_containers_running', { broker: 'b1' }), undefined, 'an observer stopped reports nothing');
});

test('the standalone listener serves GET /metrics on loopback and stops with shutdown', async () => {
  const port = await freePort();
  const telemetry = startTelemetry({ service: 'paddock-listener-test', otlpEndpoint: undefined, metricsPort: port });
  try {
    const url = await telemetry.metricsListening;
    assert.equal(url, `http://127.0.0.1:${port}/metrics`);
    telemetry.metrics.startPhaseTook('queued_to_provisioning', 80);

    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), PROMETHEUS_CONTENT_TYPE);
    const samples = parseExposition(await res.text());
    assert.equal(valueOf(samples, 'paddock_execution_start_duration_sum', { phase: 'queued_to_provisioning' }), 80);

    const other = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(other.status, 404);
    await other.text();
  } finally {
    await telemetry.shutdown();
  }
  await assert.rejects(fetch(`http://127.0.0.1:${port}/metrics`), 'nothing listens after shutdown');
  await telemetry.shutdown();
});

test('metricsPort 0 serves no listener, and a taken port says so', async (t) => {
  const off = startTelemetry({ service: 'paddock-off-test', otlpEndpoint: undefined, metricsPort: 0 });
  t.after(() => off.shutdown());
  assert.equal(await off.metricsListening, null);

  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => taken.close(() => resolve())));
  const { port } = taken.address() as { port: number };
  const clash = startTelemetry({ service: 'paddock-clash-test', otlpEndpoint: undefined, metricsPort: port });
  t.after(() => clash.shutdown());
  await assert.rejects(clash.metricsListening, (err: unknown) => {
    assert.ok(err instanceof MetricsListenError);
    assert.equal(err.port, port);
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\).*PADDOCK_METRICS_PORT`));
    return true;
  });
  // The service still records and scrapes without its listener.
  clash.metrics.errorOccurred('MetricsListenError');
  assert.match(await clash.metricsHandler(), /paddock_errors_total\{kind="MetricsListenError"/);

  assert.throws(() => startTelemetry({ service: 'x', otlpEndpoint: undefined, metricsPort: 70_000 }), /metricsPort/);
});
