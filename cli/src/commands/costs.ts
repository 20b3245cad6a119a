import { parseArgs, type OptionSpecs } from '../args.js';
import { PaddockClient } from '../client.js';
import { clientConfig, type ClientConfig } from '../clientConfig.js';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import { formatDuration, formatTable } from '../format.js';

const GROUPS = ['execution', 'workflow', 'project', 'team', 'user', 'model'] as const;

/** One group of `GET /api/v1/costs`. */
export interface CostRow {
  key: string;
  costMicros: number;
  llmCostMicros: number;
  computeCostMicros: number;
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  cpuMs: number;
  memoryMibMs: number;
  wallMs: number;
  unpricedModels: string[];
  executions: number;
  llmCalls: number;
}

export interface CostReport {
  groupBy: string;
  from: string | null;
  to: string | null;
  currency: string;
  rows: CostRow[];
  totals: CostRow;
  truncated: boolean;
}

/**
 * Money from micro-units: "$12.34" in USD, "12.34 EUR" otherwise; four decimals when there is a fraction
 * of a cent, so that small costs do not read as zero.
 */
export function formatMoney(micros: number, currency: string): string {
  const negative = micros < 0;
  const abs = Math.abs(micros);
  const decimals = abs % 10_000 === 0 ? 2 : 4;
  const text = (abs / 1_000_000).toFixed(decimals);
  if (currency === 'USD') return `${negative ? '-' : ''}$${text}`;
  return `${negative ? '-' : ''}${text} ${currency}`;
}

/** "12.50" (dollars, up to six decimals) as micro-units, exactly: no float rounding. */
export function parseMoney(flag: string, value: string): number {
  const m = /^([0-9]{1,12})(?:\.([0-9]{1,6}))?$/.exec(value.trim().replace(/^\$/, ''));
  if (!m) throw new UsageError(`${flag} expects an amount such as 25 or 12.50, got "${value}"`);
  return Number(m[1]) * 1_000_000 + Number((m[2] ?? '').padEnd(6, '0'));
}

/** `1.2M`, `35.0k`, `512`: token counts at a glance. */
function formatCount(n: number): string {
  if (n >= 1_000_000) return `${(n / 1_000_000).toFixed(1)}M`;
  if (n >= 10_000) return `${(n / 1000).toFixed(1)}k`;
  return String(n);
}

/** The cost, price and budget routes of the API, as `paddock costs`, `budgets` and `prices` use them. */
export class CostsApi {
  readonly #client: PaddockClient;

  constructor(config: ClientConfig) {
    this.#client = new PaddockClient(config);
  }

  request<T>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<T> {
    return this.#client.json<T>(method, path, body);
  }
}

const OPTIONS = {
  by: { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  project: { type: 'string' },
  team: { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies OptionSpecs;

function keyLabel(groupBy: string, key: string): string {
  if (key !== '') return key;
  return groupBy === 'workflow' ? '(no workflow)' : '(not attributed yet)';
}

export function costTable(report: CostReport): string {
  const money = (micros: number) => formatMoney(micros, report.currency);
  const line = (label: string, r: CostRow) => [
    label,
    money(r.costMicros),
    money(r.llmCostMicros),
    money(r.computeCostMicros),
    formatCount(r.inputTokens + r.cacheReadTokens + r.cacheWriteTokens),
    formatCount(r.outputTokens),
    formatDuration(r.cpuMs),
    String(r.executions),
    r.unpricedModels.length === 0 ? '' : `${r.unpricedModels.length} unpriced`,
  ];
  const table = formatTable(
    [report.groupBy.toUpperCase(), 'COST', 'LLM', 'COMPUTE', 'TOKENS IN', 'TOKENS OUT', 'CPU', 'EXECUTIONS', ''],
    [...report.rows.map((r) => line(keyLabel(report.groupBy, r.key), r)), line('TOTAL', report.totals)],
  );
  const notes = [
    ...(report.truncated ? [`only the ${report.rows.length} most expensive are listed; TOTAL counts them all`] : []),
    ...(report.totals.unpricedModels.length > 0
      ? [`no price for ${report.totals.unpricedModels.join(', ')}: their tokens are counted, their cost is unknown and not included (paddock prices set FILE)`]
      : []),
  ];
  return [table.replace(/ +$/gm, ''), ...notes].join('\n');
}

export const costs: Command = {
  name: 'costs',
  summary: 'what executions cost, by execution, workflow, project, team, user or model',
  usage: `Usage: paddock costs [--by GROUP] [--from TIME] [--to TIME] [--project ID] [--team ID] [--json]

Shows what the executions you may see cost: LLM tokens by model and compute, priced from Paddock's
price list, most expensive first, with the total. Live while executions run.

Options:
  --by GROUP      execution, workflow, project (default), team, user or model
  --from TIME     usage from this time on: 2025-06-01, 2025-06-01T12:00:00Z or epoch ms (default: the beginning)
  --to TIME       usage before this time (default: now)
  --project ID    only this project
  --team ID       only this team's projects
  --json          print the API's answer (money in micro-units)
  -h, --help      show this help`,

  async run(ctx, argv) {
    const args = parseArgs(argv, OPTIONS, { command: 'costs' });
    if (args.help) {
      ctx.stdout.write(`${this.usage}\n`);
      return 0;
    }
    if (args.positionals.length > 0 || args.rest.length > 0) throw new UsageError('costs takes no arguments', 'costs');
    const { by, from, to, project, team, json } = args.options;
    if (by !== undefined && !(GROUPS as readonly string[]).includes(by)) throw new UsageError(`--by must be one of ${GROUPS.join(', ')}, got "${by}"`, 'costs');
    const query = new URLSearchParams();
    for (const [name, value] of [['groupBy', by], ['from', from], ['to', to], ['project', project], ['team', team]] as const) {
      if (value !== undefined) query.set(name, value);
    }
    const api = new CostsApi(await clientConfig(ctx.env));
    const report = await api.request<CostReport>('GET', `/api/v1/costs${query.size === 0 ? '' : `?${query}`}`);
    if (json) {
      ctx.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return 0;
    }
    if (report.rows.length === 0) {
      ctx.stderr.write('no usage in this range\n');
      return 0;
    }
    ctx.stdout.write(`${costTable(report)}\n`);
    return 0;
  },
};
