import { context, propagation } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import type { PaddockMetrics } from './instruments.js';
import { startMetrics } from './metrics.js';

export interface TelemetryOptions {
  /** The resource's service.name, e.g. `paddock-broker`. */
  readonly service: string;
  /** Base URL of an OTLP/HTTP collector (OTEL_EXPORTER_OTLP_ENDPOINT); traces and metrics are pushed there when set. */
  readonly otlpEndpoint: string | undefined;
  /** Serve `GET /metrics` on this port by itself (PADDOCK_METRICS_PORT); 0 or absent serves none. */
  readonly metricsPort?: number;
  /** The address that listener binds; loopback unless a scraper on another host must reach it. */
  readonly metricsHost?: string;
  /** How often metrics are pushed over OTLP. */
  readonly metricsExportIntervalMs?: number;
  /** How long shutdown may take to push what is left before it gives up. */
  readonly shutdownTimeoutMs?: number;
}

export interface Telemetry {
  /** Paddock's instruments (see instruments.ts): what the service records its metrics with. */
  readonly metrics: PaddockMetrics;
  /**
   * Every metric of this service now, in the Prometheus text exposition format (serve it with
   * PROMETHEUS_CONTENT_TYPE): for a service that mounts `/metrics` on its own HTTP server.
   */
  metricsHandler(): Promise<string>;
  /**
   * The URL of the standalone `/metrics` listener once it listens, or null when `metricsPort` is 0 or
   * absent. Rejects with MetricsListenError when the port cannot be bound; a service awaits it when it
   * starts so that a taken port stops it with that message.
   */
  readonly metricsListening: Promise<string | null>;
  /** Pushes spans and metrics not yet exported and closes the listener; resolves, never rejects. */
  shutdown(): Promise<void>;
}

const DEFAULT_EXPORT_INTERVAL_MS = 15_000;
const DEFAULT_SHUTDOWN_TIMEOUT_MS = 5_000;

/**
 * Trace context always propagates (W3C traceparent in NATS headers and gRPC metadata); spans are recorded
 * and exported over OTLP/HTTP only when an endpoint is configured. Metrics are always recorded, so that
 * `/metrics` answers without a collector, and are also pushed over OTLP/HTTP when an endpoint is set.
 */
export function startTelemetry(opts: TelemetryOptions): Telemetry {
  const metricsPort = opts.metricsPort ?? 0;
  if (!Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort > 65_535) {
    throw new RangeError(`metricsPort must be a port number (1-65535) or 0 for none, not ${metricsPort}`);
  }
  const exportIntervalMs = opts.metricsExportIntervalMs ?? DEFAULT_EXPORT_INTERVAL_MS;
  if (!(exportIntervalMs > 0)) throw new RangeError(`metricsExportIntervalMs must be above 0, not ${exportIntervalMs}`);
  const shutdownTimeoutMs = opts.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;

  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const resource = resourceFromAttributes({ 'service.name': opts.service, 'service.namespace': 'paddock' });

  const metrics = startMetrics({
    resource,
    otlpEndpoint: opts.otlpEndpoint,
    exportIntervalMs,
    listenPort: metricsPort,
    listenHost: opts.metricsHost ?? '127.0.0.1',
  });

  let tracerProvider: NodeTracerProvider | undefined;
  if (opts.otlpEndpoint) {
    const exporter = new OTLPTraceExporter({ url: `${opts.otlpEndpoint.replace(/\/$/, '')}/v1/traces` });
    tracerProvider = new NodeTracerProvider({
      resource,
      spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 500 })],
    });
    tracerProvider.register();
  }

  let stopped: Promise<void> | undefined;
  return {
    metrics: metrics.instruments,
    metricsHandler: metrics.scrape,
    metricsListening: metrics.listening,
    shutdown: () =>
      (stopped ??= Promise.all([
        metrics.shutdown(shutdownTimeoutMs),
        tracerProvider?.shutdown().catch(() => {}),
      ]).then(() => {})),
  };
}
