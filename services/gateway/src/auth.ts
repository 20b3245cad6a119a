import type { FastifyInstance, FastifyRequest, FastifySchema, RouteOptions } from 'fastify';
import { NotFoundError, UnauthorizedError } from '@paddock/errors';
import { isRunToken } from './executions/runTokens.js';
import type { TicketStore } from './instances/ticketStore.js';
import { isProjectToken } from './tenancy/projectTokens.js';
import type { User, UserStore } from './users/userStore.js';

/** An execution calling back with its run token: it acts as that execution, never as its owner. */
export interface RunPrincipal {
  readonly kind: 'run';
  readonly executionId: string;
  readonly ownerId: string;
}

/** Automation with a project token: it acts in that project only, with its role there. */
export interface ProjectTokenPrincipal {
  readonly kind: 'projectToken';
  readonly tokenId: string;
  readonly projectId: string;
  /** The role it was made with; ProjectAccess bounds it by its creator's current role. */
  readonly role: 'member' | 'viewer';
  /** The project admin who made it: the owner of the executions it creates. */
  readonly creator: User;
}

/**
 * Who a request acts as: a user (by token or terminal ticket), one execution (by its run token), or a
 * project's automation (by a project token).
 */
export type Principal = { readonly kind: 'user'; readonly user: User } | RunPrincipal | ProjectTokenPrincipal;

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the authentication hook on every route that is not public. */
    principal: Principal;
    /**
     * The user a user principal is. Reading it on a request made with a run or project token is a
     * programming error (an answer 500), never the owner's or the creator's identity lent to the token.
     */
    readonly user: User;
  }
  interface FastifyContextConfig {
    /** Served without any credential. */
    public?: boolean;
    /**
     * Also served to the run token of the execution the route's `:id` names (another id answers 404, as
     * another user's execution does); `request.principal` says which kind of caller it is.
     */
    runToken?: boolean;
    /**
     * Also served to project tokens (`pdp_…`); the handler decides with `request.principal` and
     * ProjectAccess, which confines such a token to its project.
     */
    projectToken?: boolean;
    /**
     * A one-time ticket in `?ticket=` (POST /api/v1/instances/{id}/terminal-ticket) stands for the user's
     * token, for the execution the route's `:id` names only: browsers cannot set headers on a WebSocket.
     */
    terminalTicket?: boolean;
  }
}

/** What the authentication hook checks credentials against. */
export interface Credentials {
  readonly users: UserStore;
  readonly tickets: TicketStore;
  /** The execution a run token belongs to while it runs; throws UnauthorizedError for any other token. */
  readonly runs: { authenticateRun(token: string): Promise<RunPrincipal> };
  /** The project token a bearer token is, unless revoked or expired; throws UnauthorizedError otherwise. */
  readonly projectTokens: { authenticate(token: string): Promise<ProjectTokenPrincipal> };
}

/** The token of an `Authorization: Bearer …` header, if there is one. */
export function bearerToken(header: string | undefined): string | undefined {
  return header ? /^Bearer\s+(\S+)$/i.exec(header)?.[1] : undefined;
}

/** The security schemes of the OpenAPI document: one per kind of credential the gateway accepts. */
export const SECURITY_SCHEMES = {
  bearer: { type: 'http', scheme: 'bearer', description: "a user's token (pdk_…): the admin's is in $PADDOCK_HOME/admin-token" },
  runToken: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'prt_<execution id>_<random>',
    description:
      "an execution's own PADDOCK_RUN_TOKEN, for calls back from inside it: accepted only on the operations that list it, " +
      'for that execution only (another id answers 404), and only until the execution is final (then 401)',
  },
  projectToken: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'pdp_<random>',
    description:
      "a project's token for automation (POST /api/v1/projects/{id}/tokens), acting in that project only with its role (member or viewer): " +
      'accepted only on the operations that list it; elsewhere 401',
  },
  terminalTicket: {
    type: 'apiKey',
    in: 'query',
    name: 'ticket',
    description: 'a one-time ticket from POST /api/v1/instances/{id}/terminal-ticket (valid 60 s), for the WebSocket routes of that instance',
  },
} as const;

/** The `security` of a route's operation in the OpenAPI document, as its config says who may call it. */
function securityOf(config: RouteOptions['config']): FastifySchema['security'] {
  if (config?.public) return [];
  return [
    { bearer: [] },
    ...(config?.runToken ? [{ runToken: [] }] : []),
    ...(config?.projectToken ? [{ projectToken: [] }] : []),
    ...(config?.terminalTicket ? [{ terminalTicket: [] }] : []),
  ];
}

/** Writes into a route's OpenAPI operation the credentials the authentication hook accepts on it. */
export function documentSecurity(schema: FastifySchema | undefined, route: Pick<RouteOptions, 'config'>): FastifySchema {
  return { ...schema, security: securityOf(route.config) };
}

const NO_CREDENTIAL = 'missing or invalid bearer token: send "Authorization: Bearer <token>"';

/**
 * Every route needs a credential unless its config says `public: true`: a user's bearer token; on the
 * routes that say so, an execution's run token (for that execution), a project token or a terminal ticket.
 * Neither a run token nor a project token is a user's token: any other route answers them 401, as it would
 * a token that does not exist.
 */
export function installAuth(app: FastifyInstance, credentials: Credentials): void {
  // A plain value, set per request; null until the hook has run.
  app.decorateRequest<Principal, 'principal'>('principal', null as unknown as Principal);
  app.decorateRequest('user', {
    getter(this: FastifyRequest): User {
      const principal = this.principal as Principal | null;
      if (principal?.kind === 'user') return principal.user;
      const caller = !principal ? 'not authenticated' : principal.kind === 'run' ? `the run of execution ${principal.executionId}` : `project token ${principal.tokenId}`;
      throw new Error(`${this.method} ${this.routeOptions.url ?? this.url} read the caller's user, but the caller is ${caller}`);
    },
  });
  app.addHook('onRoute', (route) => {
    // Both credentials are bound to one execution, which only the `:id` of the path can name.
    if ((route.config?.runToken || route.config?.terminalTicket) && !/:id(\/|$)/.test(route.url)) {
      throw new Error(`${route.method.toString()} ${route.url}: runToken and terminalTicket need an :id in the path`);
    }
  });
  app.addHook('onRequest', async (req) => {
    const config = req.routeOptions.config;
    if (config?.public || req.is404) return;
    req.principal = await authenticate(req, credentials);
  });
}

async function authenticate(req: FastifyRequest, { users, tickets, runs, projectTokens }: Credentials): Promise<Principal> {
  const config = req.routeOptions.config;
  const id = (req.params as { id?: string }).id;
  const ticket = config.terminalTicket ? (req.query as { ticket?: unknown }).ticket : undefined;
  if (typeof ticket === 'string') {
    const taken = await tickets.take(ticket);
    if (!taken || taken.executionId !== id) throw new UnauthorizedError('the terminal ticket is not valid (they work once, for 60 s)');
    const user = await users.byId(taken.userId);
    if (!user) throw new UnauthorizedError('the user of this ticket is gone');
    return { kind: 'user', user };
  }
  const token = bearerToken(req.headers.authorization);
  if (token === undefined) {
    throw new UnauthorizedError(config.terminalTicket ? `${NO_CREDENTIAL}, or ?ticket= from POST /api/v1/instances/{id}/terminal-ticket` : NO_CREDENTIAL);
  }
  if (isRunToken(token)) {
    if (!config.runToken) throw new UnauthorizedError("a run token is not accepted here: this route needs a user's token");
    const run = await runs.authenticateRun(token);
    // Its own execution only: any other is as absent as another user's.
    if (run.executionId !== id) throw new NotFoundError('execution', id ?? '');
    return run;
  }
  if (isProjectToken(token)) {
    if (!config.projectToken) throw new UnauthorizedError("a project token is not accepted here: this route needs a user's token");
    return projectTokens.authenticate(token);
  }
  const user = await users.byToken(token);
  if (!user) throw new UnauthorizedError('the bearer token is not valid');
  return { kind: 'user', user };
}
