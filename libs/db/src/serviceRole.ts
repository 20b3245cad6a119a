/** A service name, password or table list that Paddock cannot make a role, schema or URL of. */
export class InvalidServiceRoleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidServiceRoleError';
  }
}

const ROLE_PREFIX = 'paddock_';
/** PostgreSQL's identifiers are at most 63 bytes; the role's name adds the prefix to the service's. */
const MAX_SERVICE_LENGTH = 63 - ROLE_PREFIX.length;
const SERVICE_NAME = new RegExp(`^[a-z][a-z0-9_]{0,${MAX_SERVICE_LENGTH - 1}}$`);

/** The login role of `service`: `paddock_<service>`. */
export function serviceRole(service: string): string {
  checkServiceName(service);
  return `${ROLE_PREFIX}${service}`;
}

/** Refuses a service name that cannot name a schema and a role as it is (no quoting surprises, nothing reserved). */
export function checkServiceName(service: string): void {
  if (typeof service !== 'string' || !SERVICE_NAME.test(service) || service === 'public' || service.startsWith('pg_') || service === 'information_schema') {
    throw new InvalidServiceRoleError(
      `service name ${JSON.stringify(service)} cannot name a schema and a role: use lowercase letters, digits and _, starting with a letter, at most ${MAX_SERVICE_LENGTH} characters, not public or pg_*`,
    );
  }
}
