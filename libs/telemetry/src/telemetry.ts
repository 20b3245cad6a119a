import { context, propagation } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';

export interface Telemetry {
  /** Flushes spans not yet exported; resolves, never rejects. */
  shutdown(): Promise<void>;
}

/**
 * Trace context always propagates (W3C traceparent in NATS headers and gRPC metadata); spans are recorded
 * and exported over OTLP/HTTP only when an endpoint is configured.
 */
export function startTelemetry(opts: { service: string; otlpEndpoint: string | undefined }): Telemetry {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  if (!opts.otlpEndpoint) return { shutdown: async () => {} };

  const exporter = new OTLPTraceExporter({ url: `${opts.otlpEndpoint.replace(/\/$/, '')}/v1/traces` });
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': opts.service, 'service.namespace': 'paddock' }),
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 500 })],
  });
  provider.register();
  return {
    shutdown: () => provider.shutdown().catch(() => {}),
  };
}
