import { numberOption, parseArgs, type OptionSpecs } from '../args.js';
import { PaddockClient } from '../client.js';
import { clientConfig } from '../clientConfig.js';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import type { Execution } from '../execution.js';
import { formatAge, formatTable, truncate } from '../format.js';

const OPTIONS = {
  state: { type: 'string' },
  limit: { type: 'string', short: 'n' },
  json: { type: 'boolean' },
} as const satisfies OptionSpecs;

const COMMAND_WIDTH = 60;

export const ls: Command = {
  name: 'ls',
  summary: 'list executions, newest first',
  usage: `Usage: paddock ls [--state STATE] [--limit N] [--json]

Lists executions, newest first.

Options:
  --state STATE   only executions in this state (queued, provisioning, executing, completed, failed, cancelled)
  -n, --limit N   at most N executions
  --json          print the executions as JSON
  -h, --help      show this help`,

  async run(ctx, argv) {
    const args = parseArgs(argv, OPTIONS, { command: 'ls' });
    if (args.help) {
      ctx.stdout.write(`${this.usage}\n`);
      return 0;
    }
    if (args.positionals.length > 0 || args.rest.length > 0) throw new UsageError('ls takes no arguments', 'ls');
    const { state, limit, json } = args.options;
    const client = new PaddockClient(await clientConfig(ctx.env));
    const page = await client.listExecutions({
      state,
      limit: limit === undefined ? undefined : numberOption('--limit', limit, { integer: true, min: 1 }),
    });
    if (json) {
      ctx.stdout.write(`${JSON.stringify(page.items, null, 2)}\n`);
      return 0;
    }
    if (page.items.length === 0) {
      ctx.stderr.write(state === undefined ? 'no executions yet\n' : `no ${state} executions\n`);
      return 0;
    }
    ctx.stdout.write(`${executionTable(page.items, new Date())}\n`);
    return 0;
  },
};

export function executionTable(items: readonly Execution[], now: Date): string {
  return formatTable(
    ['ID', 'STATE', 'KIND', 'EXIT', 'CREATED', 'COMMAND'],
    items.map((e) => [
      e.id,
      e.state,
      e.kind,
      e.exitCode === null ? '-' : String(e.exitCode),
      formatAge(e.createdAt, now),
      e.command === null ? `(${e.kind})` : truncate(e.command, COMMAND_WIDTH),
    ]),
  );
}
