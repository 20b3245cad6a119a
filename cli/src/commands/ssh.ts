import type { ReadStream, WriteStream } from 'node:tty';
import { Client } from 'ssh2';
import { parseArgs, type OptionSpecs } from '../args.js';
import { PaddockClient } from '../client.js';
import { clientConfig } from '../clientConfig.js';
import type { Command } from '../command.js';
import { CommandError, UsageError } from '../errors.js';

const OPTIONS = { show: { type: 'boolean' } } as const satisfies OptionSpecs;

export const ssh: Command = {
  name: 'ssh',
  summary: "open a terminal in a running agent or service (its tmux session 'agent')",
  usage: `Usage: paddock ssh ID [--show]

Opens an interactive SSH session in the running instance of execution ID; the login joins tmux session
'agent', where the agent works (leave with Ctrl-b d). Agents and services with a network run sshd.

Options:
  --show      print the host, port, user and password instead, for your own SSH client
  -h, --help  show this help`,

  async run(ctx, argv) {
    const args = parseArgs(argv, OPTIONS, { command: 'ssh' });
    if (args.help) {
      ctx.stdout.write(`${this.usage}\n`);
      return 0;
    }
    const [id, ...extra] = args.positionals;
    if (id === undefined || extra.length > 0 || args.rest.length > 0) throw new UsageError('give exactly one execution ID', 'ssh');
    const access = await new PaddockClient(await clientConfig(ctx.env)).ssh(id);
    if (args.options.show) {
      ctx.stdout.write(`ssh -p ${access.port} ${access.username}@${access.host}\npassword: ${access.password}\n`);
      return 0;
    }
    const input = ctx.stdin as Partial<ReadStream> & NodeJS.ReadableStream;
    const output = ctx.stdout as Partial<WriteStream> & NodeJS.WritableStream;
    return new Promise<number>((resolve, reject) => {
      const client = new Client();
      client.on('error', (err) => reject(new CommandError(`cannot reach the instance over SSH: ${err.message}`, { cause: err })));
      client.on('ready', () => {
        // Interactive: each keystroke goes out at once (as OpenSSH does for a session with a terminal).
        client.setNoDelay(true);
        client.shell({ term: process.env['TERM'] ?? 'xterm-256color', cols: output.columns ?? 80, rows: output.rows ?? 24 }, (err, stream) => {
          if (err) return reject(new CommandError(`no shell: ${err.message}`, { cause: err }));
          const raw = input.isTTY === true && typeof input.setRawMode === 'function';
          if (raw) input.setRawMode!(true);
          const onResize = () => stream.setWindow(output.rows ?? 24, output.columns ?? 80, 0, 0);
          output.on('resize', onResize);
          // The end of a piped stdin is not the end of the session: the remote shell says when it is over.
          input.pipe(stream, { end: false });
          stream.pipe(output, { end: false });
          stream.stderr.pipe(ctx.stderr, { end: false });
          stream.on('exit', (code: number | null) => {
            stream.once('close', () => {
              input.unpipe(stream);
              if (raw) input.setRawMode!(false);
              output.off('resize', onResize);
              input.pause();
              client.end();
              resolve(code ?? 0);
            });
          });
        });
      });
      client.connect({ host: access.host, port: access.port, username: access.username, password: access.password, readyTimeout: 15_000 });
    });
  },
};
