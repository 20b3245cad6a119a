import type { FastifyInstance } from 'fastify';
import { UnauthorizedError } from '@paddock/errors';
import type { User, UserStore } from './users/userStore.js';

declare module 'fastify' {
  interface FastifyRequest {
    user: User;
  }
  interface FastifyContextConfig {
    /** Served without a token. */
    public?: boolean;
  }
}

/** Every route needs `Authorization: Bearer <token>` unless its config says `public: true`. */
export function installAuth(app: FastifyInstance, users: UserStore): void {
  app.decorateRequest('user', null as unknown as User);
  app.addHook('onRequest', async (req) => {
    if (req.routeOptions.config?.public || req.is404) return;
    const header = req.headers.authorization;
    const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (!match) throw new UnauthorizedError();
    const user = await users.byToken(match[1]!);
    if (!user) throw new UnauthorizedError('the bearer token is not valid');
    req.user = user;
  });
}
