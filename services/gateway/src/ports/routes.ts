import type { FastifyPluginAsync } from 'fastify';
import { topics, type Bus } from '@paddock/bus';
import { PaddockError, ValidationError } from '@paddock/errors';
import type { Logger } from '@paddock/telemetry';
import { errorResponses } from '../errors.js';
import type { ExecutionService } from '../executions/executionService.js';
import { FINAL_STATES, type ExecutionRow } from '../executions/executionStore.js';
import { idParams } from '../executions/schemas.js';
import { InstanceUnavailableError } from '../instances/brokers.js';
import type { User } from '../users/userStore.js';
import { lastPortEvent, portViews, portViewSchema } from './openPorts.js';
import { streamPortEvents } from './portEventStream.js';
import type { PortUrls } from './portUrls.js';
import { PORT_VISIBILITIES, type PortVisibility, type PortVisibilityStore } from './portVisibilityStore.js';
import { signShareToken } from './shareLinks.js';

export interface PortRoutesOptions {
  readonly executions: ExecutionService;
  readonly bus: Bus;
  readonly visibility: PortVisibilityStore;
  readonly urls: PortUrls;
  /** The key share links are signed with; the ingress checks them with the same one. */
  readonly ingressKey: Buffer;
  readonly log: Logger;
  /** How often the event stream sends a heartbeat comment (15 s). */
  readonly heartbeatMs?: number;
}

/** The query parameter of a port's URL that carries a share link's token (the ingress reads it). */
export const SHARE_PARAMETER = 'paddock_share';
export const SHARE_DEFAULT_S = 3600;
export const SHARE_MAX_S = 7 * 24 * 3600;

const HEARTBEAT_MS = 15_000;

const portParams = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'port'],
  properties: {
    ...idParams.properties,
    // A string checked by the route: a port out of range is told so in words, not as a pattern.
    port: { type: 'string', minLength: 1, maxLength: 16, description: 'a TCP port, 1-65535' },
  },
} as const;

/** The port of a path, or a 400 that says what a port is. */
function parsePort(text: string): number {
  const port = Number(text);
  if (!/^[0-9]{1,5}$/.test(text) || port < 1 || port > 65535) throw new ValidationError(`port "${text}" is not a TCP port: give a number from 1 to 65535`);
  return port;
}

/**
 * The ports of an instance, which portdetect finds as servers start listening inside it: listed, followed
 * as Server-Sent Events, made visible to others (`private`, `project`, `public`, published to services/xds
 * for the ingress), and shared by signed links. Owner only: another user's instance answers 404.
 */
export const portRoutes: FastifyPluginAsync<PortRoutesOptions> = async (app, opts) => {
  const { executions, bus, visibility, urls, ingressKey } = opts;
  const openStreams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of openStreams) end();
  });

  /** The owner's instance, still there to have ports (not final); another user's is 404. */
  async function liveInstance(user: User, id: string, doing: string): Promise<ExecutionRow> {
    const row = await executions.get(user, id);
    if (FINAL_STATES.includes(row.state)) throw new InstanceUnavailableError(`execution ${id} is ${row.state}: its ports closed with it, there is nothing to ${doing}`);
    return row;
  }

  app.get<{ Params: { id: string } }>(
    '/api/v1/instances/:id/ports',
    {
      schema: {
        tags: ['ports'],
        summary: "The TCP ports servers listen on inside an instance, with their URLs (viewer or above in the instance's project)",
        description:
          'As portdetect last saw them: a server appears about 100 ms after its listen(). An instance that is not running has none. ' +
          '`url` is where the ingress serves the port ({id}-{port}.{BASE_DOMAIN}); `visibility` who may open it.',
        params: idParams,
        response: { 200: { type: 'array', items: portViewSchema }, ...errorResponses },
      },
    },
    async (req) => {
      const row = await executions.get(req.user, req.params.id, 'viewer');
      if (FINAL_STATES.includes(row.state)) return [];
      const [event, map] = await Promise.all([lastPortEvent(bus, row.id), visibility.mapOf(row.id)]);
      return portViews(row.id, event, map, urls);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/instances/:id/ports/events',
    {
      schema: {
        tags: ['ports'],
        summary: "Server-Sent Events: an instance's ports now, then each change, until the instance ends (viewer or above in the instance's project)",
        description:
          'Every event\'s data is one JSON object. `event: ports` {ports: [...]} comes first with every open port, and again when a visibility changes; ' +
          '`event: opened` / `event: closed` {port, ports} when a server starts or stops listening (ports: every port open after it); ' +
          '`event: end` {reason} when the instance ends, and the response ends with it (an EventSource should close() on it). ' +
          'A comment line comes every 15 s so that proxies keep the connection.',
        params: idParams,
        response: { 200: { description: 'the event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } }, ...errorResponses },
      },
    },
    async (req, reply) => {
      const row = await executions.get(req.user, req.params.id, 'viewer');
      reply.hijack();
      const res = reply.raw;
      try {
        const end = await streamPortEvents(res, {
          bus,
          instanceId: row.id,
          isFinal: async () => FINAL_STATES.includes((await executions.get(req.user, row.id, 'viewer')).state),
          lastEvent: () => lastPortEvent(bus, row.id),
          visibility: () => visibility.mapOf(row.id),
          urls,
          heartbeatMs: opts.heartbeatMs ?? HEARTBEAT_MS,
          log: opts.log,
        });
        if (res.writableEnded || res.destroyed) return;
        openStreams.add(end);
        res.once('close', () => openStreams.delete(end));
      } catch (err) {
        // Nothing was sent yet: the failure is still a proper error answer.
        if (res.headersSent) {
          res.destroy();
          return;
        }
        req.log.warn({ err, instanceId: row.id }, 'port event stream failed to start');
        res.writeHead(503, { 'content-type': 'application/json; charset=utf-8', 'retry-after': '2' });
        res.end(JSON.stringify({ error: { code: 'unavailable', message: `the ports of ${row.id} cannot be followed right now (${(err as Error).message}); try again in a few seconds` } }));
      }
    },
  );

  app.patch<{ Params: { id: string; port: string }; Body: { visibility: PortVisibility } }>(
    '/api/v1/instances/:id/ports/:port',
    {
      schema: {
        tags: ['ports'],
        summary: "Who may open a port's URL: its owner (private, the default), the project, or anyone (public); member or above in the instance's project",
        description:
          'Kept for the instance\'s life; the port need not be listening yet. `project`: any member of the instance\'s project (any role) may open it. ' +
          'The instance\'s whole visibility map is published to services/xds on each change.',
        params: portParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['visibility'],
          properties: { visibility: { type: 'string', enum: [...PORT_VISIBILITIES] } },
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            required: ['port', 'visibility'],
            properties: { port: { type: 'integer' }, visibility: { type: 'string', enum: [...PORT_VISIBILITIES] } },
          },
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const row = await liveInstance(req.user, req.params.id, 'make visible');
      const port = parsePort(req.params.port);
      await visibility.set(row.id, port, req.body.visibility, async (map) => {
        await bus.publish(topics.portVisibility, row.id, { instanceId: row.id, visibility: Object.fromEntries(map), atMs: Date.now() }, { timeoutMs: 5_000 });
      });
      return { port, visibility: req.body.visibility };
    },
  );

  app.post<{ Params: { id: string; port: string }; Body: { expiresInSeconds?: number } }>(
    '/api/v1/instances/:id/ports/:port/share',
    {
      // Every field has a default, so no body at all is the empty one (and is validated as such).
      preValidation: async (req) => {
        req.body ??= {};
      },
      schema: {
        tags: ['ports'],
        summary: "A link that opens a port's URL to whoever has it, until it expires (member or above in the instance's project)",
        description:
          `The URL with ?${SHARE_PARAMETER}=<token>: a token signed by the gateway for this instance and port, valid for expiresInSeconds ` +
          `(default ${SHARE_DEFAULT_S}, at most ${SHARE_MAX_S}, 7 days), whatever the port's visibility. It cannot be revoked alone: it ends at its expiry or with the instance.`,
        params: portParams,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { expiresInSeconds: { type: 'integer', minimum: 1, maximum: SHARE_MAX_S, description: `default ${SHARE_DEFAULT_S}` } },
        },
        response: {
          201: {
            type: 'object',
            additionalProperties: false,
            required: ['url', 'expiresAt'],
            properties: { url: { type: 'string' }, expiresAt: { type: 'string', format: 'date-time' } },
          },
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const row = await liveInstance(req.user, req.params.id, 'share');
      const port = parsePort(req.params.port);
      const url = urls.of(row.id, port);
      if (url === null) throw new PaddockError('no_ingress', 409, 'this gateway runs no ingress (PADDOCK_INGRESS_PORT=0 and no PADDOCK_PUBLIC_INGRESS_URL): a port has no URL to share');
      const expiresAtMs = Date.now() + (req.body.expiresInSeconds ?? SHARE_DEFAULT_S) * 1000;
      const token = signShareToken({ instanceId: row.id, port, expiresAtMs }, ingressKey);
      return reply
        .code(201)
        .header('cache-control', 'no-store')
        .send({ url: `${url}?${SHARE_PARAMETER}=${encodeURIComponent(token)}`, expiresAt: new Date(expiresAtMs).toISOString() });
    },
  );
};
