import { createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { parseArgs, type OptionSpecs } from '../args.js';
import { PaddockClient } from '../client.js';
import { clientConfig } from '../clientConfig.js';
import type { Command } from '../command.js';
import { CommandError, UsageError } from '../errors.js';
import { formatBytes } from '../format.js';

const OPTIONS = { output: { type: 'string', short: 'o' } } as const satisfies OptionSpecs;

export const download: Command = {
  name: 'download',
  summary: "download an execution's artifacts as a zip file",
  usage: `Usage: paddock download ID [-o FILE]

Downloads the artifacts of an execution (its workspace, or the paths it asked to keep) as a zip file.

Options:
  -o, --output FILE  where to write it (default: ID.zip)
  -h, --help         show this help`,

  async run(ctx, argv) {
    const args = parseArgs(argv, OPTIONS, { command: 'download' });
    if (args.help) {
      ctx.stdout.write(`${this.usage}\n`);
      return 0;
    }
    const [id, ...extra] = args.positionals;
    if (id === undefined || extra.length > 0 || args.rest.length > 0) throw new UsageError('give exactly one execution ID', 'download');
    const file = args.options.output ?? `${id}.zip`;
    const body = await new PaddockClient(await clientConfig(ctx.env)).artifacts(id);
    // Written aside and renamed at the end, so FILE is never a truncated zip.
    const partial = `${file}.part`;
    try {
      await pipeline(body, createWriteStream(partial));
      await rename(partial, file);
    } catch (err) {
      await rm(partial, { force: true });
      throw new CommandError(`downloading the artifacts of ${id} to ${file} failed: ${(err as Error).message}`, { cause: err });
    }
    ctx.stdout.write(`${file} (${formatBytes((await stat(file)).size)})\n`);
    return 0;
  },
};
