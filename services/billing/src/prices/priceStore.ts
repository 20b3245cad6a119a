import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { inTransaction, type Pool, type Queryable } from '@paddock/db';
import { NotFoundError, ValidationError } from '@paddock/errors';
import { PriceBook } from './priceBook.js';
import { checkPriceList, type ModelPrice, type PriceList, type PriceListInput } from './priceList.js';

/** The prices billing starts with (version 1), beside this package's code. */
export const DEFAULT_PRICES_FILE = fileURLToPath(new URL('../../../prices/default.json', import.meta.url));

interface VersionRow {
  version: number;
  currency: string;
  note: string;
  createdBy: string;
  createdAtMs: number;
  cpuMicrosPerMillionCpuSeconds: number;
  memoryMicrosPerMillionGibSeconds: number;
}

/**
 * Prices as data (price_versions, model_prices, compute_prices): versions are never changed, only added,
 * so each one is read from the database once and kept.
 */
export class PriceStore {
  readonly #books = new Map<number, PriceBook>();

  constructor(private readonly pool: Pool) {}

  /**
   * Version 1 from `file` (prices/default.json) when there is no version yet. Replicas starting together
   * agree: the second waits on the first's row and then finds it there.
   */
  async seed(file: string, now = Date.now()): Promise<boolean> {
    const list = checkPriceList(JSON.parse(await readFile(file, 'utf8')) as unknown);
    return inTransaction(this.pool, async (client) => {
      const inserted = await client.query(
        `INSERT INTO price_versions (version, currency, note, created_by, created_at_ms)
         SELECT 1, $1, $2, 'paddock', $3 WHERE NOT EXISTS (SELECT 1 FROM price_versions)
         ON CONFLICT (version) DO NOTHING RETURNING version`,
        [list.currency, list.note, now],
      );
      if (inserted.rowCount === 0) return false;
      await insertPrices(client, 1, list);
      return true;
    });
  }

  /** The version in force now, as a PriceBook. */
  async current(db: Queryable = this.pool): Promise<PriceBook> {
    const r = await db.query<{ version: number | null }>('SELECT max(version) AS version FROM price_versions');
    const version = r.rows[0]?.version;
    if (version === null || version === undefined) throw new Error('billing has no prices: the price versions table is empty (version 1 is seeded at start)');
    return this.book(version, db);
  }

  async book(version: number, db: Queryable = this.pool): Promise<PriceBook> {
    const cached = this.#books.get(version);
    if (cached) return cached;
    const list = await load(db, version);
    if (!list) throw new NotFoundError('price version', String(version));
    const book = new PriceBook(list);
    this.#books.set(version, book);
    return book;
  }

  /** A new version, in force from now on; `input` is checked as checkPriceList does. */
  async create(input: unknown, createdBy: string, now = Date.now()): Promise<PriceBook> {
    const list = checkPriceList(input);
    const version = await inTransaction(this.pool, async (client) => {
      // Two edits at once each get a version of their own, one after the other.
      await client.query('LOCK TABLE price_versions IN SHARE ROW EXCLUSIVE MODE');
      const last = (await client.query<{ version: number; currency: string }>('SELECT version, currency FROM price_versions ORDER BY version DESC LIMIT 1')).rows[0];
      // Micro-units of two currencies do not add up: the ledger and the budgets keep one.
      if (last && last.currency !== list.currency) {
        throw new ValidationError(`prices are in ${last.currency}; a new version must be too (got ${list.currency}): costs already in the ledger and budgets' limits are in ${last.currency}`);
      }
      const next = (last?.version ?? 0) + 1;
      await client.query('INSERT INTO price_versions (version, currency, note, created_by, created_at_ms) VALUES ($1, $2, $3, $4, $5)', [
        next,
        list.currency,
        list.note,
        createdBy,
        now,
      ]);
      await insertPrices(client, next, list);
      return next;
    });
    return this.book(version);
  }
}

async function insertPrices(db: Queryable, version: number, list: PriceListInput): Promise<void> {
  const column = <K extends keyof ModelPrice>(k: K) => list.models.map((m) => m[k]);
  await db.query(
    `INSERT INTO model_prices (version, provider, model, input_micros_per_million, output_micros_per_million, cache_read_micros_per_million, cache_write_micros_per_million)
     SELECT $1::int, * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])`,
    [
      version,
      column('provider'),
      column('model'),
      column('inputMicrosPerMillion'),
      column('outputMicrosPerMillion'),
      column('cacheReadMicrosPerMillion'),
      column('cacheWriteMicrosPerMillion'),
    ],
  );
  await db.query('INSERT INTO compute_prices (version, cpu_micros_per_million_cpu_seconds, memory_micros_per_million_gib_seconds) VALUES ($1, $2, $3)', [
    version,
    list.compute.cpuMicrosPerMillionCpuSeconds,
    list.compute.memoryMicrosPerMillionGibSeconds,
  ]);
}

async function load(db: Queryable, version: number): Promise<PriceList | undefined> {
  const v = (
    await db.query<VersionRow>(
      `SELECT v.version, v.currency, v.note, v.created_by AS "createdBy", v.created_at_ms AS "createdAtMs",
              c.cpu_micros_per_million_cpu_seconds AS "cpuMicrosPerMillionCpuSeconds",
              c.memory_micros_per_million_gib_seconds AS "memoryMicrosPerMillionGibSeconds"
         FROM price_versions v JOIN compute_prices c USING (version) WHERE v.version = $1`,
      [version],
    )
  ).rows[0];
  if (!v) return undefined;
  const models = await db.query<ModelPrice>(
    `SELECT provider, model, input_micros_per_million AS "inputMicrosPerMillion", output_micros_per_million AS "outputMicrosPerMillion",
            cache_read_micros_per_million AS "cacheReadMicrosPerMillion", cache_write_micros_per_million AS "cacheWriteMicrosPerMillion"
       FROM model_prices WHERE version = $1 ORDER BY provider, model`,
    [version],
  );
  return Object.freeze({
    version: v.version,
    currency: v.currency,
    note: v.note,
    createdBy: v.createdBy,
    createdAtMs: v.createdAtMs,
    models: Object.freeze(models.rows.map((m) => Object.freeze({ ...m }))),
    compute: Object.freeze({ cpuMicrosPerMillionCpuSeconds: v.cpuMicrosPerMillionCpuSeconds, memoryMicrosPerMillionGibSeconds: v.memoryMicrosPerMillionGibSeconds }),
  });
}
