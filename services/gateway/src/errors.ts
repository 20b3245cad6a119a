import type { FastifyError, FastifyInstance } from 'fastify';
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

/**
 * One error handler: errors under 500 reach the caller as `{error: {code, message}}` with a stable code;
 * 500s are logged and hidden.
 */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError & { validation?: AjvError[]; validationContext?: string }, req, reply) => {
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
      return reply.code(status).send({ error: { code, message } });
    }
    req.log.error({ err }, 'request failed');
    return reply.code(500).send({ error: { code: 'internal', message: 'internal error; see the gateway log' } });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: { code: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` } }),
  );
}
