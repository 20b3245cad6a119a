export { createPool, type Pool } from './pool.js';
export { migrate, MigrationChangedError } from './migrate.js';
export { waitForDatabase, databaseAddress, DatabaseRefusedError, type WaitForDatabaseOptions, type WaitLog } from './waitForDatabase.js';
export {
  startEmbeddedPostgres,
  DataDirectoryInUseError,
  OrphanedServerError,
  SuperuserPasswordError,
  SUPERUSER_PASSWORD_FILE,
  type EmbeddedDatabase,
  type ServerExit,
} from './embedded.js';
export { serviceRole, InvalidServiceRoleError } from './serviceRole.js';
export {
  ensureServiceRoles,
  PUBLIC_TABLES_BEFORE_ROLES,
  RolePrivilegesError,
  PublicTableConflictError,
  ServiceRoleSetupError,
  type ServiceRoleSpec,
  type ServiceRolesSetup,
} from './serviceRoles.js';
export { ensureRolePasswords, serviceDatabaseUrl } from './rolePasswords.js';
export { randomPassword, SecretFileError } from './secretFile.js';
export { isDatabaseUnavailable } from './unavailable.js';
export { inTransaction, type Queryable } from './transaction.js';
