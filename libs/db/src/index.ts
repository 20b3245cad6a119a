export { createPool, type Pool } from './pool.js';
export { migrate, MigrationChangedError } from './migrate.js';
export { waitForDatabase, databaseAddress, DatabaseRefusedError, type WaitForDatabaseOptions, type WaitLog } from './waitForDatabase.js';
export { startEmbeddedPostgres, DataDirectoryInUseError, OrphanedServerError, type EmbeddedDatabase, type ServerExit } from './embedded.js';
export { isDatabaseUnavailable } from './unavailable.js';
