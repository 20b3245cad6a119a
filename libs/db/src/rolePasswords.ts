import { join } from 'node:path';
import { readOrCreateSecretFile } from './secretFile.js';
import { checkServiceName, InvalidServiceRoleError, serviceRole } from './serviceRole.js';

/**
 * The password of each service's role, from `dir/<service>.password`: generated once (32 random base64url
 * characters, mode 0600) and the same at every later call, also when several processes ask at once.
 * The result goes to ensureServiceRoles as it is.
 */
export async function ensureRolePasswords(dir: string, services: readonly string[]): Promise<{ service: string; password: string }[]> {
  const specs: { service: string; password: string }[] = [];
  for (const service of services) {
    checkServiceName(service);
    specs.push({ service, password: await readOrCreateSecretFile(join(dir, `${service}.password`)) });
  }
  return specs;
}

/**
 * The DATABASE_URL of `service`: the admin URL's server, database and options (sslmode and the like),
 * with the service's role and password instead of the admin's.
 */
export function serviceDatabaseUrl(adminUrl: string, service: string, password: string): string {
  let url: URL;
  try {
    url = new URL(adminUrl);
  } catch {
    throw new InvalidServiceRoleError('the admin database URL is not a URL of the form postgres://user:password@host:port/database');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new InvalidServiceRoleError(`the admin database URL must start with postgres:// or postgresql://, not ${url.protocol}//`);
  }
  // pg takes user and password from the query over the ones before the host: the admin's must not linger there.
  url.searchParams.delete('user');
  url.searchParams.delete('password');
  if (url.host === '') {
    // postgres:///db?host=/run/postgresql (a unix socket) has no place for credentials before the host.
    url.searchParams.set('user', serviceRole(service));
    url.searchParams.set('password', password);
  } else {
    // The setters leave '%' as it is; pg decodes what is there, so a '%' in a password must arrive as %25.
    url.username = encodeURIComponent(serviceRole(service));
    url.password = encodeURIComponent(password);
  }
  return url.toString();
}
