import type { ReadStream, WriteStream } from 'node:tty';
import { Client } from 'ssh2';
import { parseArgs, type OptionSpecs } from '../args.js';
import { PaddockClient } from '../client.js';
import { clientConfig } from '../clientConfig.js';
import type { Command } from '../command.js';
import { CommandError, UsageError } from '../errors.js';
import { openTunnel, tunnelConfig } from './tunnel.js';

const OPTIONS = { show: { type: 'boolean' } } as const satisfies OptionSpecs;

/** Where sshd listens inside every agent and service (Paddock's base image). */
const INSTANCE_SSH_PORT = 2222;

export const ssh: Command = {
  name: 'ssh',
  summary: "open a terminal in a running agent or service (its tmux session 'agent')",
  usage: `Usage: paddock ssh ID [--show]

Opens an interactive SSH session in the running instance of execution ID; the login joins tmux session
'agent', where the agent works (leave with Ctrl-b d). Every agent and service runs sshd, reached through
the gateway (paddock tunnel), whatever its network.

Options:
  --show      print an OpenSSH command line (through paddock tunnel) and the password instead
  -h, --help  show this help`,

  async run(ctx, argv) {
    const args = parseArgs(argv, OPTIONS, { command: 'ssh' });
    if (args.help) {
      ctx.stdout.write(`${this.usage}\n`);
      return 0;
    }
    const [id, ...extra] = args.positionals;
    if (id === undefined || extra.length > 0 || args.rest.length > 0) throw new UsageError('give exactly one execution ID', 'ssh');
    const config = await clientConfig(ctx.env);
    const access = await new PaddockClient(config).ssh(id);
    if (args.options.show) {
      // The instance's host key is made at its start, so no known_hosts entry could ever match it.
      const proxy = `npx paddock tunnel ${id} ${INSTANCE_SSH_PORT}`;
      ctx.stdout.write(`ssh -o ProxyCommand='${proxy}' -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null ${access.username}@${id}\npassword: ${access.password}\n`);
      return 0;
    }
    const sock = await openTunnel(await tunnelConfig(ctx.env), id, INSTANCE_SSH_PORT);
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
      client.connect({ sock, username: access.username, password: access.password, readyTimeout: 15_000 });
    });
  },
};
