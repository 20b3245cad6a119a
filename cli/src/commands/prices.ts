import { readFile } from 'node:fs/promises';
import { parseArgs, type OptionSpecs } from '../args.js';
import { clientConfig } from '../clientConfig.js';
import type { Command } from '../command.js';
import { CommandError, UsageError } from '../errors.js';
import { formatTable } from '../format.js';
import { CostsApi, formatMoney } from './costs.js';

/** A price list as `GET /api/v1/prices` answers it and `PUT /api/v1/prices` takes it (without version, createdAt, createdBy). */
export interface PriceList {
  version: number;
  createdAt: string;
  createdBy: string;
  currency: string;
  note: string;
  models: {
    provider: string;
    model: string;
    inputMicrosPerMillion: number;
    outputMicrosPerMillion: number;
    cacheReadMicrosPerMillion: number;
    cacheWriteMicrosPerMillion: number;
  }[];
  compute: { cpuMicrosPerMillionCpuSeconds: number; memoryMicrosPerMillionGibSeconds: number };
}

const OPTIONS = { json: { type: 'boolean' } } as const satisfies OptionSpecs;

export function priceTable(prices: PriceList): string {
  const money = (micros: number) => formatMoney(micros, prices.currency);
  const models = formatTable(
    ['PROVIDER', 'MODEL', 'INPUT', 'OUTPUT', 'CACHE READ', 'CACHE WRITE'],
    prices.models.map((m) => [m.provider, m.model, money(m.inputMicrosPerMillion), money(m.outputMicrosPerMillion), money(m.cacheReadMicrosPerMillion), money(m.cacheWriteMicrosPerMillion)]),
  );
  return [
    `version ${prices.version}, set by ${prices.createdBy} on ${prices.createdAt}; per million tokens:`,
    models,
    `compute: ${money(prices.compute.cpuMicrosPerMillionCpuSeconds)} per million CPU-seconds, ${money(prices.compute.memoryMicrosPerMillionGibSeconds)} per million GiB-seconds of memory`,
    ...(prices.note === '' ? [] : [`note: ${prices.note}`]),
  ].join('\n');
}

export const prices: Command = {
  name: 'prices',
  summary: 'show or set the prices costs are computed with',
  usage: `Usage: paddock prices [ls] [--json]
       paddock prices set FILE

ls shows the prices in force: per million tokens of each model (a name also prices the dated names that
start with it, e.g. gpt-4o prices gpt-4o-2024-08-06) and per million CPU-seconds and GiB-seconds.
set makes a new version from FILE ('-' for stdin), JSON as --json prints it or as
services/billing/prices/default.json holds it, in micro-units (a millionth of the currency); usage
ingested from then on is priced with it. Only the admin may set prices.

Options:
  --json      print the API's answer
  -h, --help  show this help`,

  async run(ctx, argv) {
    const args = parseArgs(argv, OPTIONS, { command: 'prices' });
    if (args.help) {
      ctx.stdout.write(`${this.usage}\n`);
      return 0;
    }
    const [sub = 'ls', ...operands] = args.positionals;
    const api = new CostsApi(await clientConfig(ctx.env));
    if (sub === 'ls') {
      if (operands.length > 0) throw new UsageError('prices ls takes no arguments', 'prices');
      const list = await api.request<PriceList>('GET', '/api/v1/prices');
      ctx.stdout.write(args.options.json ? `${JSON.stringify(list, null, 2)}\n` : `${priceTable(list)}\n`);
      return 0;
    }
    if (sub !== 'set') throw new UsageError(`unknown prices command "${sub}": use ls or set`, 'prices');
    if (operands.length !== 1) throw new UsageError('prices set takes one FILE (or - for stdin)', 'prices');
    const file = operands[0] as string;
    let text: string;
    try {
      text = file === '-' ? await readStdin(ctx.stdin) : await readFile(file, 'utf8');
    } catch (err) {
      throw new CommandError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
    }
    let doc: Partial<PriceList>;
    try {
      doc = JSON.parse(text) as Partial<PriceList>;
    } catch (err) {
      throw new CommandError(`${file} is not JSON: ${(err as Error).message}`, { cause: err });
    }
    // What a listing printed with --json carries besides the list itself is not the caller's to set.
    const { currency, note, models, compute } = doc;
    const made = await api.request<PriceList>('PUT', '/api/v1/prices', { ...(currency === undefined ? {} : { currency }), ...(note === undefined ? {} : { note }), models, compute });
    ctx.stdout.write(args.options.json ? `${JSON.stringify(made, null, 2)}\n` : `prices version ${made.version} is in force\n`);
    return 0;
  },
};

async function readStdin(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
