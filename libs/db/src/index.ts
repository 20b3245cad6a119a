export { createPool, type Pool } from './pool.js';
export { migrate, MigrationChangedError } from './migrate.js';
export { startEmbeddedPostgres, type EmbeddedDatabase } from './embedded.js';
