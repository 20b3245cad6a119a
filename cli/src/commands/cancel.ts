import { parseArgs } from '../args.js';
import { PaddockClient } from '../client.js';
import { clientConfig } from '../clientConfig.js';
import type { Command } from '../command.js';
import { UsageError } from '../errors.js';

export const cancel: Command = {
  name: 'cancel',
  summary: 'cancel an execution',
  usage: `Usage: paddock cancel ID

Asks Paddock to cancel an execution: a queued one never starts, a running one is stopped (SIGTERM, then
SIGKILL after a grace period). Prints the execution's state.`,

  async run(ctx, argv) {
    const args = parseArgs(argv, {}, { command: 'cancel' });
    if (args.help) {
      ctx.stdout.write(`${this.usage}\n`);
      return 0;
    }
    const [id, ...extra] = args.positionals;
    if (id === undefined || extra.length > 0 || args.rest.length > 0) throw new UsageError('give exactly one execution ID', 'cancel');
    const execution = await new PaddockClient(await clientConfig(ctx.env)).cancelExecution(id);
    ctx.stdout.write(`${execution.id} ${execution.state}\n`);
    return 0;
  },
};
