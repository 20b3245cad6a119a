import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import websocket from '@fastify/websocket';
import { unrecordedMetrics, type Logger, type PaddockMetrics } from '@paddock/telemetry';
import type { Bus } from '@paddock/bus';
import { documentSecurity, installAuth, SECURITY_SCHEMES } from './auth.js';
import type { GatewayConfig } from './config.js';
import { installErrorHandler } from './errors.js';
import { compatRoutes } from './executions/compatRoutes.js';
import type { ExecutionService } from './executions/executionService.js';
import type { ExecutionStore } from './executions/executionStore.js';
import { executionRoutes } from './executions/routes.js';
import { healthRoutes, type HealthWatch } from './health.js';
import type { BrokerDirectory } from './instances/brokers.js';
import { documentWebSocket, instanceRoutes } from './instances/routes.js';
import { metricsRoutes } from './metrics.js';
import { portRoutes, type PortRoutesOptions } from './ports/routes.js';
import type { TicketStore } from './instances/ticketStore.js';
import { projectSecretRoutes, secretRoutes } from './secrets/routes.js';
import type { SecretStore } from './secrets/secretStore.js';
import type { BillingApi } from './costs/billingApi.js';
import { costRoutes } from './costs/routes.js';
import { projectRoutes } from './tenancy/projectRoutes.js';
import { ProjectTokenStore } from './tenancy/projectTokens.js';
import { teamRoutes } from './tenancy/teamRoutes.js';
import { uiRoutes } from './ui/routes.js';
import { userRoutes } from './users/routes.js';
import type { UserStore } from './users/userStore.js';

/**
 * Generic HTTP clients send `content-type: application/json` with no body on action routes (POST …/cancel):
 * an empty body is no body, not malformed JSON. A route that needs a body still says so, by its schema.
 */
function acceptEmptyJson(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, undefined);
    return parseJson(req, text, done);
  });
}

export interface AppOptions {
  config: GatewayConfig;
  log: Logger;
  users: UserStore;
  executions: ExecutionService;
  store: ExecutionStore;
  secrets: SecretStore;
  brokers: BrokerDirectory;
  tickets: TicketStore;
  bus: Bus;
  health: HealthWatch;
  /** Where the gateway records its errors (the 500s by kind); nowhere when absent. */
  metrics?: PaddockMetrics;
  /** Every metric of this process in Prometheus text: served at /metrics to the admin. Absent: no /metrics. */
  scrapeMetrics?: () => Promise<string>;
  /**
   * The ports API: the visibility table, where port URLs point, the key share links are signed with.
   * Without it the ports routes are not served (tests of other parts build the app without them).
   */
  ports?: Pick<PortRoutesOptions, 'visibility' | 'urls' | 'ingressKey' | 'heartbeatMs'>;
  /** billing's API: the cost, price and budget routes are served when it is given. */
  billing?: BillingApi;
  /** The server the app is built on (the listener that opened before the app was ready); Fastify makes one otherwise. */
  serverFactory?: (handler: (req: IncomingMessage, res: ServerResponse) => void) => Server;
}

/** The REST API as a Fastify instance that does not listen: server code listens, tests inject. */
export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.log as FastifyBaseLogger,
    // One line per request, written by the onResponse hook below, instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.config.bodyLimitBytes,
    // Unknown fields are an error, and "5" is not a number: nothing is silently dropped or coerced.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true, useDefaults: false } },
    ...(opts.serverFactory ? { serverFactory: opts.serverFactory } : {}),
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'Paddock API', version: '1', description: 'Run jobs and agents in isolated containers.' },
      components: { securitySchemes: SECURITY_SCHEMES },
      security: [{ bearer: [] }],
    },
    // What the route's config says about credentials, and a WebSocket's handshake, written into its operation.
    transform: ({ schema, url, route }) => ({ url, schema: documentWebSocket(documentSecurity(schema, route), route) }),
  });
  await app.register(websocket, { options: { maxPayload: 1024 * 1024 } });
  acceptEmptyJson(app);
  const metrics = opts.metrics ?? unrecordedMetrics();
  installErrorHandler(app, (err) => metrics.errorOccurred(err.name));
  const projectTokens = new ProjectTokenStore(opts.store.pool);
  installAuth(app, { users: opts.users, tickets: opts.tickets, runs: opts.executions, projectTokens });
  // Routes of every folder decide who may see and do what through the same ProjectAccess as the executions.
  const tenancy = opts.executions.tenancy;
  app.decorate('projectAccess', tenancy);
  app.addHook('onResponse', async (req, reply) => {
    const line = { method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) };
    // Health probes come every few hundred milliseconds from supervisors and load balancers.
    if (req.url === '/healthz') req.log.debug(line, 'request');
    else req.log.info(line, 'request');
  });
  app.get('/api/v1/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());
  await app.register(healthRoutes, { health: opts.health });
  if (opts.scrapeMetrics) await app.register(metricsRoutes, { scrape: opts.scrapeMetrics });
  await app.register(userRoutes, { users: opts.users, tenancy });
  await app.register(secretRoutes, { secrets: opts.secrets });
  await app.register(teamRoutes, { tenancy });
  await app.register(projectRoutes, { tenancy, tokens: projectTokens });
  await app.register(projectSecretRoutes, { secrets: opts.secrets });
  const routeOpts = { executions: opts.executions, store: opts.store, bus: opts.bus, artifactsDir: opts.config.artifactsDir };
  await app.register(executionRoutes, routeOpts);
  await app.register(compatRoutes, routeOpts);
  await app.register(instanceRoutes, { executions: opts.executions, brokers: opts.brokers, tickets: opts.tickets, log: opts.log });
  if (opts.billing) await app.register(costRoutes, { billing: opts.billing, access: tenancy });
  if (opts.ports) await app.register(portRoutes, { ...opts.ports, executions: opts.executions, bus: opts.bus, log: opts.log });
  await app.register(uiRoutes);
  return app;
}
