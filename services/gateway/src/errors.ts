import type { IncomingMessage } from 'node:http';
import type { FastifyError, FastifyInstance } from 'fastify';
import { isBusUnavailable } from '@paddock/bus';
import { isDatabaseUnavailable } from '@paddock/db';
import { PaddockError } from '@paddock/errors';

export const errorBody = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: { code: { type: 'string' }, message: { type: 'string' } },
      required: ['code', 'message'],
    },
  },
  required: ['error'],
} as const;

export const errorResponses = { '4xx': errorBody, '5xx': errorBody } as const;

interface AjvError {
  instancePath: string;
  message?: string;
  keyword: string;
  params: Record<string, unknown>;
}

/** A validation failure in words that say what to fix. */
function describeValidation(context: string, errors: AjvError[]): string {
  return errors
    .map((e) => {
      const where = `${context}${e.instancePath.replace(/\//g, '.')}`;
      if (e.keyword === 'additionalProperties') return `${where} has an unknown field "${String(e.params['additionalProperty'])}"`;
      if (e.keyword === 'enum') return `${where} must be one of ${(e.params['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
      return `${where} ${e.message ?? 'is invalid'}`;
    })
    .join('; ');
}

const DRAIN_MAX_BYTES = 256 * 1024 * 1024;
const DRAIN_MAX_MS = 30_000;

/** Reads and drops the rest of a request body, within limits, so that the answer can be read. */
async function drain(req: IncomingMessage): Promise<void> {
  if (req.complete || req.destroyed) return;
  await new Promise<void>((resolve) => {
    let received = 0;
    const done = () => {
      clearTimeout(timer);
      req.off('data', onData).off('end', done).off('error', done).off('close', done);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > DRAIN_MAX_BYTES) done();
    };
    const timer = setTimeout(done, DRAIN_MAX_MS);
    req.on('data', onData).once('end', done).once('error', done).once('close', done);
    req.resume();
  });
}

/**
 * One error handler: errors under 500 reach the caller as `{error: {code, message}}` with a stable code;
 * 500s are logged, hidden, and told to `onInternal` (which counts them by kind).
 */
export function installErrorHandler(app: FastifyInstance, onInternal: (err: Error) => void = () => {}): void {
  app.setErrorHandler(async (err: FastifyError & { validation?: AjvError[]; validationContext?: string }, req, reply) => {
    if (err instanceof PaddockError) {
      return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
    }
    if (err.validation) {
      return reply.code(400).send({ error: { code: 'invalid_request', message: describeValidation(err.validationContext ?? 'body', err.validation) } });
    }
    const status = err.statusCode ?? 500;
    if (status < 500) {
      const code =
        err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'body_too_large'
        : err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'unsupported_media_type'
        : err.code?.startsWith('FST_ERR_CTP') || err instanceof SyntaxError ? 'invalid_json'
        : 'invalid_request';
      const message = code === 'body_too_large' ? `request body is larger than the ${app.initialConfig.bodyLimit} bytes allowed` : err.message;
      // A client still sending its body would see the connection reset instead of this answer.
      if (code === 'body_too_large') await drain(req.raw);
      return reply.code(status).send({ error: { code, message } });
    }
    const away = isDatabaseUnavailable(err) ? 'the database' : isBusUnavailable(err) ? 'NATS' : null;
    if (away) {
      // PostgreSQL or NATS restarting: the same request works again in a moment, and a client should retry it.
      req.log.warn({ err: err.message }, `${away} unavailable`);
      return reply
        .code(503)
        .header('retry-after', '2')
        .send({ error: { code: 'unavailable', message: `${away} is not reachable right now; try again in a few seconds` } });
    }
    onInternal(err);
    req.log.error({ err }, 'request failed');
    return reply.code(500).send({ error: { code: 'internal', message: 'internal error; see the gateway log' } });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: { code: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` } }),
  );
}
