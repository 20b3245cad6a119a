import { createInterface } from 'node:readline';
import { parseArgs, type OptionSpecs } from '../args.js';
import { PaddockClient } from '../client.js';
import { clientConfig } from '../clientConfig.js';
import type { Command } from '../command.js';
import { CommandError, UsageError } from '../errors.js';

const OPTIONS = { stdin: { type: 'boolean', short: 'i' } } as const satisfies OptionSpecs;

interface ExecLine {
  stream?: 'stdout' | 'stderr';
  data?: string;
  exitCode?: number;
  error?: { message?: string };
}

export const exec: Command = {
  name: 'exec',
  summary: 'run a command in a running agent or service',
  usage: `Usage: paddock exec [-i] ID -- COMMAND [ARG...]

Runs COMMAND in the running instance of execution ID, as the agent user in /workspace, prints its output
as it comes and exits with its exit status.

Options:
  -i, --stdin  send this command's standard input to COMMAND
  -h, --help   show this help`,

  async run(ctx, argv) {
    const args = parseArgs(argv, OPTIONS, { command: 'exec' });
    if (args.help) {
      ctx.stdout.write(`${this.usage}\n`);
      return 0;
    }
    const [id, ...inline] = args.positionals;
    const cmd = [...inline, ...args.rest];
    if (id === undefined || cmd.length === 0) throw new UsageError('give an execution ID and a COMMAND (after --)', 'exec');
    let stdin: string | undefined;
    if (args.options.stdin) {
      const chunks: Buffer[] = [];
      for await (const chunk of ctx.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
      stdin = Buffer.concat(chunks).toString('utf8');
    }
    const client = new PaddockClient(await clientConfig(ctx.env));
    const response = await client.exec(id, cmd, stdin);
    let exitCode: number | undefined;
    for await (const raw of createInterface({ input: response, crlfDelay: Infinity })) {
      if (raw === '') continue;
      const line = JSON.parse(raw) as ExecLine;
      if (line.error) throw new CommandError(`the command failed to run: ${line.error.message ?? 'unknown error'}`);
      if (line.exitCode !== undefined) exitCode = line.exitCode;
      else if (line.data !== undefined) (line.stream === 'stderr' ? ctx.stderr : ctx.stdout).write(line.data);
    }
    if (exitCode === undefined) throw new CommandError('the connection ended before the command did');
    return exitCode;
  },
};
