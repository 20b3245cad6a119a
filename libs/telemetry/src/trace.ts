import { context, propagation, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api';

export const tracer = trace.getTracer('paddock');

/** Anything that holds string headers: NATS headers and gRPC metadata are adapted to this. */
export interface Carrier {
  get(key: string): string | undefined;
  set(key: string, value: string): void;
}

export function injectContext(carrier: Carrier, ctx: Context = context.active()): void {
  propagation.inject(ctx, carrier, {
    set: (c, key, value) => c.set(key, value),
  });
}

export function extractContext(carrier: Carrier): Context {
  return propagation.extract(context.active(), carrier, {
    get: (c, key) => c.get(key),
    keys: () => ['traceparent', 'tracestate'],
  });
}

/** Runs `fn` in a span that ends with it, recording a thrown error, under `parent` when given. */
export async function withSpan<T>(
  name: string,
  attributes: Record<string, string | number | boolean>,
  fn: (span: Span) => Promise<T>,
  parent: Context = context.active(),
): Promise<T> {
  return tracer.startActiveSpan(name, { attributes }, parent, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  });
}
