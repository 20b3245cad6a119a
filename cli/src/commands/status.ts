import { parseArgs, type OptionSpecs } from '../args.js';
import { PaddockClient } from '../client.js';
import { clientConfig } from '../clientConfig.js';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import type { Execution } from '../execution.js';
import { formatAge, formatDuration } from '../format.js';

const OPTIONS = { json: { type: 'boolean' } } as const satisfies OptionSpecs;

export const status: Command = {
  name: 'status',
  summary: 'show one execution',
  usage: `Usage: paddock status ID [--json]

Shows one execution: state, exit code, image, command, times, limits.

Options:
  --json      print the execution as JSON
  -h, --help  show this help`,

  async run(ctx, argv) {
    const args = parseArgs(argv, OPTIONS, { command: 'status' });
    if (args.help) {
      ctx.stdout.write(`${this.usage}\n`);
      return 0;
    }
    const [id, ...extra] = args.positionals;
    if (id === undefined || extra.length > 0 || args.rest.length > 0) throw new UsageError('give exactly one execution ID', 'status');
    const execution = await new PaddockClient(await clientConfig(ctx.env)).getExecution(id);
    ctx.stdout.write(args.options.json ? `${JSON.stringify(execution, null, 2)}\n` : `${describeExecution(execution, new Date())}\n`);
    return 0;
  },
};

export function describeExecution(e: Execution, now: Date): string {
  const when = (iso: string | null): string => (iso === null ? '-' : `${iso} (${formatAge(iso, now)})`);
  const rows: [string, string][] = [
    ['ID', e.id],
    ['State', e.state],
    ['Exit code', e.exitCode === null ? '-' : String(e.exitCode)],
    ['Kind', e.kind],
    ['Image', e.image],
    ['Command', e.command ?? '-'],
    ['Owner', e.owner],
    ['Created', when(e.createdAt)],
    ['Started', when(e.startedAt)],
    ['Finished', when(e.finishedAt)],
  ];
  if (e.startedAt !== null) {
    const end = e.finishedAt === null ? now.getTime() : Date.parse(e.finishedAt);
    rows.push(['Ran for', `${formatDuration(end - Date.parse(e.startedAt))}${e.finishedAt === null ? ' so far' : ''}`]);
  }
  rows.push(
    ['Timeout', `${e.timeoutS} s`],
    ['Resources', `${e.resources.cpus} CPU, ${e.resources.memoryMb} MB`],
    ['Network', e.network],
  );
  if (e.error !== null && e.error !== '') rows.push(['Error', e.error]);
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${`${label}:`.padEnd(width + 2)}${value.replace(/\n/g, `\n${' '.repeat(width + 2)}`)}`).join('\n');
}
