import { parseArgs, type OptionSpecs } from '../args.js';
import { clientConfig } from '../clientConfig.js';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import { formatTable } from '../format.js';
import { CostsApi, formatMoney, parseMoney } from './costs.js';

/** A budget as `GET /api/v1/budgets` lists it. */
export interface Budget {
  id: string;
  name: string;
  scope: 'project' | 'team';
  scopeId: string;
  limitMicros: number;
  period: string;
  thresholdsPercent: number[];
  hard: boolean;
  action: 'reject' | 'queue';
  webhookUrl: string | null;
  spentMicros: number;
  periodStart: string;
  periodEnd: string | null;
}

const OPTIONS = {
  project: { type: 'string' },
  team: { type: 'string' },
  limit: { type: 'string' },
  name: { type: 'string' },
  period: { type: 'string' },
  hard: { type: 'boolean' },
  action: { type: 'string' },
  webhook: { type: 'string' },
  thresholds: { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies OptionSpecs;

const PERIODS = ['day', 'week', 'month', 'total'];
const ACTIONS = ['reject', 'queue'];

function thresholdsOf(value: string): number[] {
  const parts = value.split(',').map((p) => p.trim());
  if (parts.some((p) => !/^[0-9]{1,4}$/.test(p) || Number(p) < 1 || Number(p) > 1000)) {
    throw new UsageError(`--thresholds expects percentages from 1 to 1000 separated by commas, such as 50,80,100; got "${value}"`, 'budgets');
  }
  return parts.map(Number);
}

export function budgetTable(items: readonly Budget[], currency: string): string {
  return formatTable(
    ['ID', 'NAME', 'SCOPE', 'PERIOD', 'SPENT', 'LIMIT', 'USED', 'HARD', 'ALERTS AT'],
    items.map((b) => [
      b.id,
      b.name,
      `${b.scope} ${b.scopeId}`,
      b.period,
      formatMoney(b.spentMicros, currency),
      formatMoney(b.limitMicros, currency),
      `${Math.floor((b.spentMicros * 100) / b.limitMicros)}%`,
      b.hard ? b.action : 'no',
      `${b.thresholdsPercent.join(',')}%${b.webhookUrl === null ? '' : ' + webhook'}`,
    ]),
  );
}

export const budgets: Command = {
  name: 'budgets',
  summary: 'list, create and remove spending budgets of projects and teams',
  usage: `Usage: paddock budgets [ls] [--project ID | --team ID] [--json]
       paddock budgets create (--project ID | --team ID) --limit AMOUNT [--period PERIOD] [--name NAME]
                              [--thresholds 50,80,100] [--hard [--action reject|queue]] [--webhook URL]
       paddock budgets rm ID

A budget limits what a project or a team spends over a period (in UTC). At each threshold an alert goes
to the bus and, if given, to the webhook (signed with the secret printed at creation, only then). A hard
budget at 100% stops new work (reject: refused; queue: held until the period turns or the limit is
raised) and the LLM calls of its executions.

Options:
  --project ID        the project the budget covers (ls: its budgets and its team's)
  --team ID           the team the budget covers
  --limit AMOUNT      in the prices' currency, e.g. 25 or 12.50
  --period PERIOD     day, week (from Monday), month (default) or total
  --name NAME         a name for messages (default: made from the period and scope)
  --thresholds LIST   alert at these percentages of the limit (default 50,80,100)
  --hard              at 100%, stop new work and LLM calls
  --action ACTION     what a spent hard budget does with new work: reject (default) or queue
  --webhook URL       POST each alert here as JSON
  --json              print the API's answer (money in micro-units)
  -h, --help          show this help`,

  async run(ctx, argv) {
    const args = parseArgs(argv, OPTIONS, { command: 'budgets' });
    if (args.help) {
      ctx.stdout.write(`${this.usage}\n`);
      return 0;
    }
    const [sub = 'ls', ...operands] = args.positionals;
    const o = args.options;
    if (args.rest.length > 0) throw new UsageError('budgets takes no arguments after --', 'budgets');
    const api = new CostsApi(await clientConfig(ctx.env));
    switch (sub) {
      case 'ls': {
        if (operands.length > 0) throw new UsageError('budgets ls takes no arguments', 'budgets');
        const query = new URLSearchParams();
        if (o.project !== undefined) query.set('project', o.project);
        if (o.team !== undefined) query.set('team', o.team);
        const list = await api.request<{ currency: string; items: Budget[] }>('GET', `/api/v1/budgets${query.size === 0 ? '' : `?${query}`}`);
        if (o.json) {
          ctx.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
          return 0;
        }
        if (list.items.length === 0) {
          ctx.stderr.write('no budgets\n');
          return 0;
        }
        ctx.stdout.write(`${budgetTable(list.items, list.currency)}\n`);
        return 0;
      }
      case 'create': {
        if (operands.length > 0) throw new UsageError('budgets create takes options only', 'budgets');
        if ((o.project === undefined) === (o.team === undefined)) throw new UsageError('give --project ID or --team ID', 'budgets');
        if (o.limit === undefined) throw new UsageError('--limit AMOUNT is required', 'budgets');
        if (o.period !== undefined && !PERIODS.includes(o.period)) throw new UsageError(`--period must be one of ${PERIODS.join(', ')}, got "${o.period}"`, 'budgets');
        if (o.action !== undefined && !ACTIONS.includes(o.action)) throw new UsageError(`--action must be reject or queue, got "${o.action}"`, 'budgets');
        if (o.action !== undefined && !o.hard) throw new UsageError('--action applies to a hard budget: add --hard', 'budgets');
        const made = await api.request<{ budget: Budget; webhookSecret: string }>('POST', '/api/v1/budgets', {
          ...(o.project !== undefined ? { project: o.project } : { team: o.team }),
          limitMicros: parseMoney('--limit', o.limit),
          period: o.period ?? 'month',
          ...(o.name !== undefined ? { name: o.name } : {}),
          ...(o.thresholds !== undefined ? { thresholdsPercent: thresholdsOf(o.thresholds) } : {}),
          hard: o.hard,
          ...(o.action !== undefined ? { action: o.action } : {}),
          ...(o.webhook !== undefined ? { webhookUrl: o.webhook } : {}),
        });
        if (o.json) {
          ctx.stdout.write(`${JSON.stringify(made, null, 2)}\n`);
          return 0;
        }
        ctx.stdout.write(`${made.budget.id}\n`);
        if (made.budget.webhookUrl !== null) {
          ctx.stderr.write(`webhook secret (shown once; check X-Paddock-Signature: sha256=HMAC-SHA256(body) with it):\n${made.webhookSecret}\n`);
        }
        return 0;
      }
      case 'rm': {
        if (operands.length !== 1) throw new UsageError('budgets rm takes one budget id', 'budgets');
        await api.request('DELETE', `/api/v1/budgets/${encodeURIComponent(operands[0] as string)}`);
        return 0;
      }
      default:
        throw new UsageError(`unknown budgets command "${sub}": use ls, create or rm`, 'budgets');
    }
  },
};
