import { parseArgs, type OptionSpecs } from '../args.js';
import { clientConfig } from '../clientConfig.js';
import type { Command } from '../command.js';
import { CommandError, UsageError } from '../errors.js';
import { formatAge, formatTable } from '../format.js';
import { writeChunk } from '../output.js';
import { PortsApi, type OpenPort } from './portsApi.js';

const OPTIONS = {
  json: { type: 'boolean' },
  watch: { type: 'boolean', short: 'w' },
} as const satisfies OptionSpecs;

export function portTable(ports: readonly OpenPort[], now: Date): string {
  return formatTable(
    ['PORT', 'ADDRESS', 'VISIBILITY', 'URL', 'OPENED'],
    ports.map((p) => [String(p.port), p.address, p.visibility, p.url ?? '-', formatAge(p.openedAt, now)]),
  );
}

/** One line for a port that opened, closed or changed visibility while watching. */
function changeLine(what: string, p: OpenPort | undefined, port: number): string {
  return p === undefined ? `${what}  ${port}` : `${what}  ${p.port}  ${p.address}  ${p.visibility}  ${p.url ?? '-'}`;
}

export const ports: Command = {
  name: 'ports',
  summary: 'list the TCP ports servers listen on inside a running instance, with their URLs',
  usage: `Usage: paddock ports ID [--json] [--watch]

Lists the TCP ports that servers listen on inside the instance of execution ID (found within about
100 ms of their listen()), with the URL the ingress serves each at and who may open it.

Options:
  --json       print the ports as JSON (with --watch: one JSON event per line)
  -w, --watch  after the list, print each port that opens or closes, until the instance ends
  -h, --help   show this help`,

  async run(ctx, argv) {
    const args = parseArgs(argv, OPTIONS, { command: 'ports' });
    if (args.help) {
      ctx.stdout.write(`${this.usage}\n`);
      return 0;
    }
    const [id, ...extra] = args.positionals;
    if (id === undefined || extra.length > 0 || args.rest.length > 0) throw new UsageError('give exactly one execution ID', 'ports');
    const api = new PortsApi(await clientConfig(ctx.env));
    const { json, watch } = args.options;
    if (!watch) {
      const list = await api.list(id);
      if (json) ctx.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
      else if (list.length === 0) ctx.stderr.write(`no open ports in ${id}\n`);
      else ctx.stdout.write(`${portTable(list, new Date())}\n`);
      return 0;
    }

    const stop = new AbortController();
    const unsubscribe = ctx.interrupts.subscribe(() => stop.abort());
    let known = new Map<number, OpenPort>();
    let first = true;
    try {
      for await (const e of api.events(id, stop.signal)) {
        if (json) {
          await writeChunk(ctx.stdout, `${JSON.stringify(e)}\n`);
        } else if (e.event === 'ports' && first) {
          if (e.ports.length === 0) ctx.stderr.write(`no open ports in ${id} yet; watching\n`);
          else await writeChunk(ctx.stdout, `${portTable(e.ports, new Date())}\n`);
        } else if (e.event === 'ports') {
          // Sent again when a port's visibility changed.
          for (const p of e.ports) if (known.get(p.port)?.visibility !== p.visibility) await writeChunk(ctx.stdout, `${changeLine('changed', p, p.port)}\n`);
        } else if (e.event === 'opened' || e.event === 'closed') {
          await writeChunk(ctx.stdout, `${changeLine(e.event, e.ports.find((p) => p.port === e.port), e.port)}\n`);
        }
        if (e.event === 'end') {
          if (!json) ctx.stderr.write(`${id}: ${e.reason}\n`);
          return 0;
        }
        known = new Map(e.ports.map((p) => [p.port, p]));
        first = false;
      }
    } finally {
      unsubscribe();
    }
    if (stop.signal.aborted) return 0;
    throw new CommandError(`the event stream of ${id} ended before the instance did (the gateway restarted?); run the command again`);
  },
};
