import type { FastifyPluginAsync } from 'fastify';
import { NotFoundError, PaddockError, ValidationError } from '@paddock/errors';
import type { IngressConfig } from '../config.js';
import { errorResponses } from '../errors.js';
import { FINAL_STATES, type ExecutionStore } from '../executions/executionStore.js';
import { ingressOrigin, parseIngressHost } from './ingressHost.js';
import { LOGIN_PATH } from './ingressServer.js';
import type { IngressTokens } from './ingressTokens.js';

export interface IngressTicketRoutesOptions {
  readonly store: ExecutionStore;
  readonly tokens: IngressTokens;
  /** The hosts the ingress serves (its base domain), and where browsers reach it. */
  readonly ingress: Pick<IngressConfig, 'baseDomain' | 'port' | 'publicIngressUrl'>;
  /** Whether the user is a member of the instance's project: who may reach its `project` ports. */
  readonly inProjectOf: (instanceId: string, userId: string) => Promise<boolean>;
}

/**
 * `POST /api/v1/ingress/tickets {host}`: what the login page (/ui/ingress/login) trades the user's token for,
 * to log the browser in to one host of the ingress. The ticket works once, within a minute, for that host
 * only; the ingress turns it into a session cookie of that host at `loginUrl`. The owner of the instance
 * and the members of its project get one, while it runs (the ingress then decides by the port's
 * visibility what the session opens); for anyone else the host is as absent as any other (404).
 *
 * `loginUrl` is made here, from the host name checked and the ingress's own origin, never from what the
 * page was given: a crafted `?to=` with another port or scheme cannot send the ticket anywhere else.
 */
export const ingressTicketRoutes: FastifyPluginAsync<IngressTicketRoutesOptions> = async (app, { store, tokens, ingress, inProjectOf }) => {
  const { baseDomain } = ingress;
  app.post<{ Body: { host: string } }>(
    '/api/v1/ingress/tickets',
    {
      schema: {
        tags: ['ingress'],
        summary: 'A one-time login ticket (valid 60 s) for one host of the ingress, {id}-{port}.{BASE_DOMAIN} or {port}-{id}.{BASE_DOMAIN}, of an instance of the caller',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['host'],
          properties: { host: { type: 'string', minLength: 1, maxLength: 300, description: 'the host, as in the URL (a :port is ignored)' } },
        },
        response: {
          201: {
            type: 'object',
            properties: {
              ticket: { type: 'string' },
              host: { type: 'string' },
              expiresAt: { type: 'string' },
              loginUrl: { type: 'string', description: "where the browser goes with it: the host's /__paddock/login?ticket=…, to which it adds next=/path" },
            },
            required: ['ticket', 'host', 'expiresAt', 'loginUrl'],
          },
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const host = parseIngressHost(req.body.host, baseDomain);
      const origin = host && ingressOrigin(host.hostname, ingress);
      if (host && origin === null) throw new PaddockError('no_ingress', 409, 'this gateway runs no ingress (PADDOCK_INGRESS_PORT=0 and no PADDOCK_PUBLIC_INGRESS_URL): there is nothing to log in to');
      if (!host || !origin) throw new ValidationError(`host "${req.body.host}" is not one of the ingress: expected {instance id}-{port}.${baseDomain} or {port}-{instance id}.${baseDomain}`);
      // Whom the ingress may let in: the owner, or a member of the project for its `project` ports.
      const row = await store.get(host.instanceId, null);
      const related = row !== null && (row.ownerId === req.user.id || (await inProjectOf(row.id, req.user.id)));
      if (!row || !related || FINAL_STATES.includes(row.state)) throw new NotFoundError('instance', host.instanceId);
      const { ticket, expiresAtMs } = tokens.issueTicket(req.user.id, host.hostname);
      return reply
        .code(201)
        .header('cache-control', 'no-store')
        .send({
          ticket,
          host: host.hostname,
          expiresAt: new Date(expiresAtMs).toISOString(),
          loginUrl: `${origin}${LOGIN_PATH}?ticket=${encodeURIComponent(ticket)}`,
        });
    },
  );
};
