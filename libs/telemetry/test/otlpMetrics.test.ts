import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { startTelemetry } from '../src/index.js';

interface AnyValue {
  stringValue?: string;
  intValue?: number | string;
  doubleValue?: number;
  boolValue?: boolean;
}

interface KeyValue {
  key: string;
  value?: AnyValue;
}

interface NumberPoint {
  attributes?: KeyValue[];
  asInt?: number | string;
  asDouble?: number;
}

interface HistogramPoint {
  attributes?: KeyValue[];
  count?: number | string;
  sum?: number;
}

interface OtlpMetric {
  name: string;
  unit?: string;
  sum?: { dataPoints?: NumberPoint[]; isMonotonic?: boolean };
  gauge?: { dataPoints?: NumberPoint[] };
  histogram?: { dataPoints?: HistogramPoint[] };
}

interface ExportMetricsServiceRequest {
  resourceMetrics?: { resource?: { attributes?: KeyValue[] }; scopeMetrics?: { metrics?: OtlpMetric[] }[] }[];
}

/** One metric as it arrived, with the service.name of the resource that sent it. */
interface Received {
  /** Which export request it came in, counted from 0. */
  readonly exportIndex: number;
  readonly service: string;
  readonly metric: OtlpMetric;
}

function attributesOf(list: readonly KeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of list ?? []) {
    if (value?.stringValue !== undefined) out[key] = value.stringValue;
    else if (value?.intValue !== undefined) out[key] = Number(value.intValue);
    else if (value?.doubleValue !== undefined) out[key] = value.doubleValue;
    else if (value?.boolValue !== undefined) out[key] = value.boolValue;
  }
  return out;
}

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const raw = Buffer.concat(chunks);
  return req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
}

/**
 * An OTLP/HTTP metrics receiver speaking the JSON encoding (POST /v1/metrics, application/json), which is
 * what @opentelemetry/exporter-metrics-otlp-http sends. A body in another encoding is refused with 415
 * and remembered, so that a changed exporter fails the test with that reason.
 */
async function startReceiver() {
  const received: Received[] = [];
  const refused: string[] = [];
  let exports = 0;
  let arrived: () => void = () => {};
  const server = createServer((req, res) => {
    void (async () => {
      const type = req.headers['content-type'] ?? '';
      if (req.method !== 'POST' || req.url !== '/v1/metrics') {
        res.writeHead(404).end();
        return;
      }
      if (!type.startsWith('application/json')) {
        refused.push(type);
        res.writeHead(415, { 'content-type': 'text/plain' }).end(`only OTLP/JSON is understood here, not ${type}`);
        return;
      }
      const request = JSON.parse((await body(req)).toString('utf8')) as ExportMetricsServiceRequest;
      const exportIndex = exports++;
      for (const rm of request.resourceMetrics ?? []) {
        const service = String(attributesOf(rm.resource?.attributes)['service.name'] ?? '');
        for (const sm of rm.scopeMetrics ?? []) for (const metric of sm.metrics ?? []) received.push({ exportIndex, service, metric });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      arrived();
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain' }).end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    received: () => received,
    refused: () => refused,
    /** Resolves at the next export that arrives, or rejects after `timeoutMs`. */
    nextExport: (timeoutMs: number) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no OTLP metrics export arrived within ${timeoutMs} ms`)), timeoutMs);
        arrived = () => {
          clearTimeout(timer);
          resolve();
        };
      }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The latest data point of `name` with these attributes, across every export received. */
function latest(received: readonly Received[], name: string, attrs: Record<string, string>) {
  let found: { point: NumberPoint & HistogramPoint; metric: OtlpMetric; service: string } | undefined;
  for (const { service, metric } of received) {
    if (metric.name !== name) continue;
    const points = metric.sum?.dataPoints ?? metric.gauge?.dataPoints ?? metric.histogram?.dataPoints ?? [];
    for (const point of points) {
      const a = attributesOf(point.attributes);
      if (Object.entries(attrs).every(([k, v]) => a[k] === v)) found = { point, metric, service };
    }
  }
  return found;
}

const numberOf = (p: NumberPoint) => Number(p.asInt ?? p.asDouble);

test('metrics are pushed over OTLP/HTTP to the configured endpoint at each interval', async (t) => {
  const receiver = await startReceiver();
  t.after(() => receiver.close());
  const telemetry = startTelemetry({
    service: 'paddock-otlp-test',
    otlpEndpoint: `${receiver.url}/`,
    metricsExportIntervalMs: 300,
  });
  t.after(() => telemetry.shutdown());

  telemetry.metrics.executionTransitioned('executing', 'provisioning');
  telemetry.metrics.startPhaseTook('provisioning_to_executing', 250);
  telemetry.metrics.busDeadLettered('scheduler-requests');
  let brokers = [{ broker: 'local', running: 2 }];
  telemetry.metrics.observeRunningContainers(() => brokers);
  await receiver.nextExport(10_000);

  assert.deepEqual(receiver.refused(), []);
  const transition = latest(receiver.received(), 'paddock.executions.transitions', { state: 'executing', from_state: 'provisioning' });
  assert.ok(transition, 'the transition counter arrived');
  assert.equal(transition.service, 'paddock-otlp-test');
  assert.equal(transition.metric.unit, '{execution}');
  assert.equal(transition.metric.sum?.isMonotonic, true);
  assert.equal(numberOf(transition.point), 1);

  const phase = latest(receiver.received(), 'paddock.execution.start.duration', { phase: 'provisioning_to_executing' });
  assert.ok(phase?.metric.histogram, 'the start-phase histogram arrived');
  assert.equal(phase.metric.unit, 'ms');
  assert.equal(Number(phase.point.count), 1);
  assert.equal(phase.point.sum, 250);

  const dead = latest(receiver.received(), 'paddock.bus.dead_letters', { consumer: 'scheduler-requests' });
  assert.equal(dead && numberOf(dead.point), 1);
  const running = latest(receiver.received(), 'paddock.broker.containers.running', { broker: 'local' });
  assert.ok(running?.metric.gauge, 'the running-containers gauge arrived');
  assert.equal(numberOf(running.point), 2);

  // The next interval carries what was recorded since, cumulatively; a gauge series no longer observed
  // is not sent again.
  telemetry.metrics.executionTransitioned('executing', 'provisioning');
  brokers = [{ broker: 'other', running: 1 }];
  // An export collected before these changes may still be on its way: look at the first one after them.
  let after: Received[] = [];
  for (let attempt = 0; attempt < 5 && after.length === 0; attempt++) {
    await receiver.nextExport(10_000);
    const counted = receiver
      .received()
      .filter(({ metric }) => metric.name === 'paddock.executions.transitions' && (metric.sum?.dataPoints ?? []).some((p) => numberOf(p) === 2));
    const index = counted[0]?.exportIndex;
    after = receiver.received().filter((r) => r.exportIndex === index);
  }
  assert.ok(after.length > 0, 'an export after the second transition arrived');
  assert.equal(latest(after, 'paddock.broker.containers.running', { broker: 'local' }), undefined);
  const other = latest(after, 'paddock.broker.containers.running', { broker: 'other' });
  assert.equal(other && numberOf(other.point), 1);
});

test('shutdown pushes what was recorded since the last export', async (t) => {
  const receiver = await startReceiver();
  t.after(() => receiver.close());
  // An interval far longer than the test: only shutdown can make this export happen.
  const telemetry = startTelemetry({ service: 'paddock-flush-test', otlpEndpoint: receiver.url, metricsExportIntervalMs: 600_000 });

  telemetry.metrics.errorOccurred('EngineTimeoutError');
  telemetry.metrics.queueWaited(1_500);
  assert.deepEqual(receiver.received(), []);
  await telemetry.shutdown();

  const errors = latest(receiver.received(), 'paddock.errors', { kind: 'EngineTimeoutError' });
  assert.ok(errors, 'the error counter arrived');
  assert.equal(numberOf(errors.point), 1);
  assert.equal(errors.service, 'paddock-flush-test');
  const wait = latest(receiver.received(), 'paddock.queue.wait.duration', {});
  assert.equal(wait?.point.sum, 1_500);
});

test('shutdown with an unreachable collector still ends within its timeout', async () => {
  const receiver = await startReceiver();
  const url = receiver.url;
  // Nothing listens at this address any more: connections are refused at once on loopback.
  await receiver.close();
  const telemetry = startTelemetry({ service: 'paddock-gone-test', otlpEndpoint: url, metricsExportIntervalMs: 600_000, shutdownTimeoutMs: 2_000 });
  telemetry.metrics.errorOccurred('NatsUnavailableError');
  const startedMs = Date.now();
  await telemetry.shutdown();
  assert.ok(Date.now() - startedMs < 4_000, `shutdown took ${Date.now() - startedMs} ms`);
});
