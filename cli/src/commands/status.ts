import { parseArgs, type OptionSpecs } from '../args.js';
import { PaddockClient } from '../client.js';
import { clientConfig } from '../clientConfig.js';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import type { Execution } from '../execution.js';
import { formatAge, formatDuration } from '../format.js';
import { CostsApi, formatMoney } from './costs.js';

/** GET /api/v1/executions/{id}/cost, as far as `status` shows it. */
export interface ExecutionCost {
  readonly costMicros: number;
  readonly currency: string;
  readonly ended: boolean;
  readonly models: readonly { model: string; calls: number; inputTokens: number; outputTokens: number; unpriced: boolean }[];
  readonly compute: { cpuMs: number; wallMs: number };
}

const OPTIONS = { json: { type: 'boolean' } } as const satisfies OptionSpecs;

export const status: Command = {
  name: 'status',
  summary: 'show one execution',
  usage: `Usage: paddock status ID [--json]

Shows one execution: state, exit code, image, command, times, limits, and what it cost (so far, while it
runs): LLM calls by model and compute.

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
    const config = await clientConfig(ctx.env);
    const execution = await new PaddockClient(config).getExecution(id);
    if (args.options.json) {
      ctx.stdout.write(`${JSON.stringify(execution, null, 2)}\n`);
      return 0;
    }
    // Billing may be away for a moment: the execution is shown all the same, saying so.
    const cost = await new CostsApi(config).request<ExecutionCost>('GET', `/api/v1/executions/${encodeURIComponent(id)}/cost`).catch((err: unknown) => err as Error);
    ctx.stdout.write(`${describeExecution(execution, new Date(), cost)}\n`);
    return 0;
  },
};

export function describeExecution(e: Execution, now: Date, cost?: ExecutionCost | Error): string {
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
  if (cost instanceof Error) rows.push(['Cost', `unknown: ${cost.message}`]);
  else if (cost !== undefined) rows.push(['Cost', describeCost(cost)]);
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${`${label}:`.padEnd(width + 2)}${value.replace(/\n/g, `\n${' '.repeat(width + 2)}`)}`).join('\n');
}

function describeCost(c: ExecutionCost): string {
  const lines = [`${formatMoney(c.costMicros, c.currency)}${c.ended ? '' : ' so far'}`];
  for (const m of c.models) {
    lines.push(`${m.model}: ${m.calls} call(s), ${m.inputTokens} in, ${m.outputTokens} out${m.unpriced ? ' (no price: counted in tokens only)' : ''}`);
  }
  lines.push(`compute: ${(c.compute.cpuMs / 1000).toFixed(1)} CPU-s over ${(c.compute.wallMs / 1000).toFixed(1)} s`);
  return lines.join('\n');
}
