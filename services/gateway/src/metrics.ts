import type { FastifyPluginAsync } from 'fastify';
import { ForbiddenError } from '@paddock/errors';
import { PROMETHEUS_CONTENT_TYPE } from '@paddock/telemetry';
import { errorResponses } from './errors.js';

/**
 * `GET /metrics` in Prometheus's text format, for the admin only: it counts the executions of every user
 * (Prometheus sends the admin token with `authorization.credentials` or `bearer_token_file`).
 */
export const metricsRoutes: FastifyPluginAsync<{ scrape: () => Promise<string> }> = async (app, { scrape }) => {
  app.get(
    '/metrics',
    {
      schema: {
        tags: ['operations'],
        summary: "The gateway's metrics in Prometheus's text format (admin only)",
        response: { 200: { description: 'Prometheus text exposition format 0.0.4', content: { 'text/plain': { schema: { type: 'string' } } } }, ...errorResponses },
      },
    },
    async (req, reply) => {
      if (!req.user.isAdmin) throw new ForbiddenError("only an admin may read the metrics: they count every user's executions");
      return reply.type(PROMETHEUS_CONTENT_TYPE).header('cache-control', 'no-store').send(await scrape());
    },
  );
};
