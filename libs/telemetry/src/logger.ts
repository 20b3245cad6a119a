import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs on stderr; the service name on every line, the execution id on those about one. */
export function createLogger(service: string, level = 'info'): Logger {
  return pino({ name: service, level, base: { service, pid: process.pid } }, pino.destination(2));
}
