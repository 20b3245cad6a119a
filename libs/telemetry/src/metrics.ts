import { createServer, type Server } from 'node:http';
import { PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import type { Resource } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  InstrumentType,
  MeterProvider,
  MetricReader,
  PeriodicExportingMetricReader,
  type PushMetricExporter,
} from '@opentelemetry/sdk-metrics';
import { createPaddockMetrics, type PaddockMetrics } from './instruments.js';

/** The content type of the Prometheus text exposition format, for whoever serves `metricsHandler()`. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** The metrics listener could not bind its address (most often: the port is taken by another process). */
export class MetricsListenError extends Error {
  readonly host: string;
  readonly port: number;

  constructor(host: string, port: number, options: ErrorOptions) {
    const reason = (options.cause as NodeJS.ErrnoException | undefined)?.code ?? String(options.cause);
    super(
      `cannot serve metrics on ${host}:${port} (${reason}): choose a free port in PADDOCK_METRICS_PORT, or 0 to serve none`,
      options,
    );
    this.name = 'MetricsListenError';
    this.host = host;
    this.port = port;
  }
}

/** Lets one Prometheus job scrape every service and still tell their series apart. */
const RESOURCE_LABELS = /^service\.name$/;

/**
 * Gauges are reported as deltas so that a series their callback no longer reports (a broker that is gone,
 * an observer that was stopped) disappears. Under the cumulative temporality the SDK keeps every series a
 * gauge ever reported and repeats its last value forever: a dead broker would show its containers running.
 */
function isGauge(type: InstrumentType): boolean {
  return type === InstrumentType.OBSERVABLE_GAUGE || type === InstrumentType.GAUGE;
}

/** Cumulative sums and histograms, as Prometheus expects them; gauges as above. */
function pullTemporality(type: InstrumentType): AggregationTemporality {
  return isGauge(type) ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE;
}

/** Collects on demand, for a scrape; nothing to flush or to close. */
class PullReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: pullTemporality });
  }

  protected override async onForceFlush(): Promise<void> {}

  protected override async onShutdown(): Promise<void> {}
}

/** The OTLP exporter as configured (its temporality preference included), gauges as above. */
function withGaugesAsDeltas(exporter: OTLPMetricExporter): PushMetricExporter {
  return {
    export: (metrics, done) => exporter.export(metrics, done),
    forceFlush: () => exporter.forceFlush(),
    shutdown: () => exporter.shutdown(),
    selectAggregation: (type) => exporter.selectAggregation(type),
    selectAggregationTemporality: (type) => (isGauge(type) ? AggregationTemporality.DELTA : exporter.selectAggregationTemporality(type)),
  };
}

export interface MetricsOptions {
  readonly resource: Resource;
  /** Base URL of an OTLP/HTTP collector; metrics are pushed to `<url>/v1/metrics` when set. */
  readonly otlpEndpoint: string | undefined;
  readonly exportIntervalMs: number;
  /** A port to serve `GET /metrics` on by itself; 0 serves none. */
  readonly listenPort: number;
  readonly listenHost: string;
}

export interface Metrics {
  readonly instruments: PaddockMetrics;
  /** Every metric now, in the Prometheus text exposition format. */
  scrape(): Promise<string>;
  /** The URL of the standalone listener once it listens; null when none was asked for. */
  readonly listening: Promise<string | null>;
  /** Pushes what is not yet exported and stops; resolves, never rejects. */
  shutdown(timeoutMs: number): Promise<void>;
}

export function startMetrics(opts: MetricsOptions): Metrics {
  // Always present even when nobody scrapes: it only aggregates in memory and serializes on demand.
  const pull = new PullReader();
  const readers: MetricReader[] = [pull];
  if (opts.otlpEndpoint) {
    readers.push(
      new PeriodicExportingMetricReader({
        exporter: withGaugesAsDeltas(new OTLPMetricExporter({ url: `${opts.otlpEndpoint.replace(/\/$/, '')}/v1/metrics` })),
        exportIntervalMillis: opts.exportIntervalMs,
        exportTimeoutMillis: Math.min(opts.exportIntervalMs, 30_000),
      }),
    );
  }
  const provider = new MeterProvider({ resource: opts.resource, readers });
  const instruments = createPaddockMetrics(provider.getMeter('paddock'));

  const serializer = new PrometheusSerializer('', false, RESOURCE_LABELS);
  const scrape = async () => {
    // A collection that partly failed (a callback past its timeout) still serves what it collected.
    const { resourceMetrics } = await pull.collect();
    return serializer.serialize(resourceMetrics);
  };

  let server: Server | undefined;
  const listening =
    opts.listenPort === 0
      ? Promise.resolve(null)
      : new Promise<string>((resolve, reject) => {
          const s = createServer((req, res) => {
            const path = (req.url ?? '').split('?')[0];
            if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
              res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics is served here\n');
              return;
            }
            scrape().then(
              (body) => res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE }).end(req.method === 'HEAD' ? undefined : body),
              (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${String(err)}\n`),
            );
          });
          s.once('error', (err) => reject(new MetricsListenError(opts.listenHost, opts.listenPort, { cause: err })));
          s.listen(opts.listenPort, opts.listenHost, () => {
            server = s;
            // A scrape endpoint must not keep a stopping service alive.
            s.unref();
            const host = opts.listenHost.includes(':') ? `[${opts.listenHost}]` : opts.listenHost;
            resolve(`http://${host}:${opts.listenPort}/metrics`);
          });
        });
  // Whoever starts the service awaits `listening` to fail on a taken port; until then the rejection is
  // not an unhandled one.
  listening.catch(() => {});

  let stopped: Promise<void> | undefined;
  return {
    instruments,
    scrape,
    listening,
    shutdown: (timeoutMs) =>
      (stopped ??= (async () => {
        await listening.catch(() => {});
        const closed = new Promise<void>((resolve) => {
          if (!server) return resolve();
          server.closeAllConnections();
          server.close(() => resolve());
        });
        await Promise.all([provider.shutdown({ timeoutMillis: timeoutMs }).catch(() => {}), closed]);
      })()),
  };
}
