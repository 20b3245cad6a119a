import type { Context } from '@opentelemetry/api';
import { extractContext } from '@paddock/telemetry';
import type { Job } from './jobStore.js';

/** The trace an execution belongs to (begun by the gateway), from the traceparent stored with its job. */
export function traceContextOf(job: Job): Context | undefined {
  if (!job.traceParent) return undefined;
  const tp = job.traceParent;
  return extractContext({ get: (k) => (k === 'traceparent' ? tp : undefined), set: () => {} });
}
