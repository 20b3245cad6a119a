import { parseArgs, type OptionSpecs } from '../args.js';
import { PaddockClient } from '../client.js';
import { clientConfig } from '../clientConfig.js';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';
import { copyTo } from '../output.js';

const OPTIONS = { follow: { type: 'boolean', short: 'f' } } as const satisfies OptionSpecs;

export const logs: Command = {
  name: 'logs',
  summary: "print an execution's output",
  usage: `Usage: paddock logs ID [-f]

Prints the output of an execution, byte for byte.

Options:
  -f, --follow  keep printing new output until the execution ends
  -h, --help    show this help`,

  async run(ctx, argv) {
    const args = parseArgs(argv, OPTIONS, { command: 'logs' });
    if (args.help) {
      ctx.stdout.write(`${this.usage}\n`);
      return 0;
    }
    const [id, ...extra] = args.positionals;
    if (id === undefined || extra.length > 0 || args.rest.length > 0) throw new UsageError('give exactly one execution ID', 'logs');
    const client = new PaddockClient(await clientConfig(ctx.env));
    await copyTo(await client.logs(id, { follow: args.options.follow }), ctx.stdout);
    return 0;
  },
};
