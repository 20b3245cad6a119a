export { createPool, type Pool } from './pool.js';
export { migrate } from './migrate.js';
export { startEmbeddedPostgres, type EmbeddedDatabase } from './embedded.js';
