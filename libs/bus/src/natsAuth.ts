import { ensureNatsIdentity } from './natsIdentity.js';
import { natsServerConfig } from './natsServerConfig.js';
import { SERVICES } from './subjects.js';

/**
 * What runs a nats-server with Paddock's users, in one value: the services (each a NATS user besides
 * `admin`), how a user's key is kept, and the server's config made from the keys. `startNatsServer({ auth:
 * natsAuth })` of @paddock/testkit takes it, so that the testkit needs no dependency on this package.
 */
export const natsAuth = {
  users: SERVICES,
  ensureIdentity: ensureNatsIdentity,
  serverConfig: natsServerConfig,
} as const;
