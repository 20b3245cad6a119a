import { readFile } from 'node:fs/promises';
import { PaddockError } from '@paddock/errors';
import type { Command } from './command.js';
import { cancel } from './commands/cancel.js';
import { download } from './commands/download.js';
import { exec } from './commands/exec.js';
import { images } from './commands/images.js';
import { logs } from './commands/logs.js';
import { ls } from './commands/ls.js';
import { portForward } from './commands/portForward.js';
import { ports } from './commands/ports.js';
import { budgets } from './commands/budgets.js';
import { costs } from './commands/costs.js';
import { prices } from './commands/prices.js';
import { projects } from './commands/projects.js';
import { run } from './commands/run.js';
import { ssh } from './commands/ssh.js';
import { tunnel } from './commands/tunnel.js';
import { status } from './commands/status.js';
import { teams } from './commands/teams.js';
import type { Context } from './context.js';
import { CommandError, ConnectionError, UsageError } from './errors.js';
import { postgresServer } from './postgresServer.js';
import { up } from './up.js';

const COMMANDS: readonly Command[] = [up, run, ls, status, logs, cancel, download, exec, ssh, ports, portForward, tunnel, images, teams, projects, costs, budgets, prices];
const INTERNAL: readonly Command[] = [postgresServer];

/** `paddock ARGS...`: finds the command, runs it, and turns its errors into a message and an exit status. */
export async function runCli(ctx: Context, argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    ctx.stderr.write(`${overview()}\n`);
    return 2;
  }
  if (name === 'help' || name === '--help' || name === '-h') {
    const topic = rest[0];
    const command = topic === undefined ? undefined : find(topic);
    if (topic !== undefined && command === undefined) return usageError(ctx, new UsageError(`unknown command "${topic}"`));
    ctx.stdout.write(`${command === undefined ? overview() : command.usage}\n`);
    return 0;
  }
  if (name === 'version' || name === '--version') {
    ctx.stdout.write(`paddock ${await version()}\n`);
    return 0;
  }
  const command = find(name) ?? INTERNAL.find((c) => c.name === name);
  if (command === undefined) return usageError(ctx, new UsageError(`unknown command "${name}"`));
  try {
    return await command.run(ctx, rest);
  } catch (err) {
    if (err instanceof UsageError) return usageError(ctx, err);
    if (err instanceof PaddockError || err instanceof ConnectionError || err instanceof CommandError) {
      ctx.stderr.write(`paddock: ${err.message}\n`);
      return 1;
    }
    ctx.stderr.write(`paddock: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}

function find(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name);
}

function usageError(ctx: Context, err: UsageError): number {
  const help = err.command === undefined ? 'paddock help' : `paddock ${err.command} --help`;
  ctx.stderr.write(`paddock: ${err.message}\nRun '${help}' for usage.\n`);
  return 2;
}

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `Usage: paddock COMMAND [ARGS...]

Paddock runs jobs and AI agents in containers.

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}
  ${'help'.padEnd(width)}  show this help, or a command's: paddock help COMMAND

Environment:
  PADDOCK_URL         the API to talk to (default http://127.0.0.1:$PADDOCK_PORT, port 7070)
  PADDOCK_TOKEN       API token (default: the admin token in $PADDOCK_HOME/admin-token)
  PADDOCK_HOME        state directory (default ~/.paddock)
  PADDOCK_BRIDGE_URL  where ssh, tunnel and port-forward open tunnels: the gateway's WS-TCP bridge,
                      http://HOST:8082 (default: PADDOCK_URL)`;
}

async function version(): Promise<string> {
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}
