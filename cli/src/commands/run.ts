import { readFile } from 'node:fs/promises';
import { basename, isAbsolute, posix } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { numberOption, parseArgs, type OptionSpecs, type ParsedArgs } from '../args.js';
import { PaddockClient } from '../client.js';
import { clientConfig } from '../clientConfig.js';
import type { Command } from '../command.js';
import type { Context } from '../context.js';
import { ApiError, CommandError, UsageError } from '../errors.js';
import { TERMINAL_STATES, type Execution, type ExecutionRequest } from '../execution.js';
import { copyTo } from '../output.js';
import { shellQuote } from '../shellQuote.js';

const OPTIONS = {
  image: { type: 'string' },
  env: { type: 'list', short: 'e' },
  file: { type: 'list' },
  cpus: { type: 'string' },
  memory: { type: 'string' },
  timeout: { type: 'string' },
  network: { type: 'string' },
  python: { type: 'string' },
  project: { type: 'string' },
  detach: { type: 'boolean', short: 'd' },
} as const satisfies OptionSpecs;

const STATE_POLL_MS = 500;

export const run: Command = {
  name: 'run',
  summary: 'run a shell command or a Python script in a container and stream its output',
  usage: `Usage: paddock run [OPTIONS] [--] COMMAND [ARG...]
       paddock run [OPTIONS] --python FILE|-

Runs a shell command (or a Python script) in a fresh container, streams its output and exits with its
exit status. One COMMAND argument is passed to the shell as it is ('echo $HOME | wc -c'); several are
quoted so the container sees exactly these arguments.

Options:
  --image IMAGE          image to run in (default: the server's default image)
  -e, --env KEY=VALUE    set an environment variable (repeatable)
  --file PATH[=LOCAL]    put the content of the local text file LOCAL at PATH in the workspace
                         (repeatable; LOCAL defaults to PATH, and an absolute PATH lands at its base name)
  --cpus N               CPU limit, e.g. 0.5 or 2
  --memory MB            memory limit in megabytes
  --timeout SECONDS      fail the execution after this many seconds
  --network none|bridge  network access
  --python FILE          run FILE as a Python script; - reads it from stdin
  --project ID           the project it belongs to (default: your personal project; see paddock projects)
  -d, --detach           print the execution id and return at once
  -h, --help             show this help

Ctrl-C cancels the execution and keeps showing its output until it ends; a second Ctrl-C stops waiting.`,

  async run(ctx, argv) {
    const args = parseArgs(argv, OPTIONS, { stopAtPositional: true, command: 'run' });
    if (args.help) {
      ctx.stdout.write(`${this.usage}\n`);
      return 0;
    }
    const request = await executionRequest(args, ctx);
    const client = new PaddockClient(await clientConfig(ctx.env));

    let id: string | undefined;
    let interrupts = 0;
    const giveUp = new AbortController();
    const cancel = (executionId: string): void => {
      ctx.stderr.write(`paddock: cancelling ${executionId} (Ctrl-C again to stop waiting)\n`);
      client.cancelExecution(executionId).catch((err: unknown) => {
        ctx.stderr.write(`paddock: could not cancel ${executionId}: ${(err as Error).message}\n`);
      });
    };
    const unsubscribe = ctx.interrupts.subscribe(() => {
      interrupts += 1;
      if (interrupts === 1 && id !== undefined) cancel(id);
      if (interrupts >= 2) giveUp.abort();
    });
    try {
      id = (await client.createExecution(request)).id;
      if (args.options.detach) {
        ctx.stdout.write(`${id}\n`);
        return 0;
      }
      ctx.stderr.write(`${id}\n`);
      if (interrupts > 0) cancel(id);
      try {
        await copyTo(await client.logs(id, { follow: true, signal: giveUp.signal }), ctx.stdout);
      } catch (err) {
        if (giveUp.signal.aborted) return stoppedWaiting(ctx, id);
        if (err instanceof ApiError) throw err;
        ctx.stderr.write(`paddock: lost the output of ${id} (${(err as Error).message}); waiting for it to end\n`);
      }
      let execution: Execution;
      try {
        execution = await waitForEnd(client, id, giveUp.signal);
      } catch (err) {
        if (giveUp.signal.aborted) return stoppedWaiting(ctx, id);
        throw err;
      }
      return exitStatus(execution, ctx);
    } finally {
      unsubscribe();
    }
  },
};

/** The request body from the command line; reads the script and the --file contents. */
export async function executionRequest(args: ParsedArgs<typeof OPTIONS>, ctx: Pick<Context, 'stdin'>): Promise<ExecutionRequest> {
  const { options, rest } = args;
  let body: ExecutionRequest;
  if (options.python !== undefined) {
    if (rest.length > 0) throw new UsageError('give either --python FILE or a COMMAND, not both', 'run');
    const script = options.python === '-' ? await readStream(ctx.stdin) : await readText(options.python, '--python');
    body = { kind: 'python', script };
  } else {
    if (rest.length === 0) throw new UsageError('nothing to run: give a COMMAND (after --) or --python FILE', 'run');
    body = { kind: 'shell', command: rest.length === 1 ? (rest[0] as string) : shellQuote(rest) };
  }
  const resources = {
    ...(options.cpus === undefined ? {} : { cpus: numberOption('--cpus', options.cpus, { min: 0, exclusiveMin: true }) }),
    ...(options.memory === undefined ? {} : { memoryMb: numberOption('--memory', options.memory, { integer: true, min: 1 }) }),
  };
  if (options.network !== undefined && options.network !== 'none' && options.network !== 'bridge') {
    throw new UsageError(`--network must be none or bridge, got "${options.network}"`, 'run');
  }
  return {
    ...body,
    ...(options.image === undefined ? {} : { image: options.image }),
    ...(options.env.length === 0 ? {} : { env: parseEnv(options.env) }),
    ...(options.file.length === 0 ? {} : { files: await readFiles(options.file) }),
    ...(Object.keys(resources).length === 0 ? {} : { resources }),
    ...(options.timeout === undefined ? {} : { timeoutS: numberOption('--timeout', options.timeout, { integer: true, min: 1 }) }),
    ...(options.network === undefined ? {} : { network: options.network }),
    ...(options.project === undefined ? {} : { project: options.project }),
  };
}

function parseEnv(pairs: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--env expects KEY=VALUE, got "${pair}"`, 'run');
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}

async function readFiles(specs: readonly string[]): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    const local = eq === -1 ? spec : spec.slice(eq + 1);
    const target = eq === -1 ? (isAbsolute(spec) ? basename(spec) : spec) : spec.slice(0, eq);
    const path = posix.normalize(target);
    if (target === '' || local === '' || path.startsWith('/') || path === '..' || path.startsWith('../')) {
      throw new UsageError(`--file ${spec}: PATH must be a relative path inside the workspace`, 'run');
    }
    files[path] = await readText(local, `--file ${spec}`);
  }
  return files;
}

/** A local text file; the API carries file contents as strings, so anything but UTF-8 is refused. */
async function readText(file: string, what: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new CommandError(`${what}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  return decodeUtf8(bytes, `${what}: ${file}`);
}

async function readStream(stream: AsyncIterable<Buffer | string>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return decodeUtf8(Buffer.concat(chunks), 'the script on stdin');
}

function decodeUtf8(bytes: Buffer, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (err) {
    throw new CommandError(`${what} is not UTF-8 text`, { cause: err });
  }
}

/** The log stream ends with the output; the state may be written a moment later. */
async function waitForEnd(client: PaddockClient, id: string, signal: AbortSignal): Promise<Execution> {
  for (;;) {
    const execution = await client.getExecution(id);
    if (TERMINAL_STATES.has(execution.state)) return execution;
    await sleep(STATE_POLL_MS, undefined, { signal });
  }
}

/** completed: the command's status; failed with one: that; failed without one, or cancelled: 1 and why. */
export function exitStatus(execution: Execution, ctx: Pick<Context, 'stderr'>): number {
  const why = execution.error === null || execution.error === '' ? '' : `: ${execution.error}`;
  if (execution.state === 'completed') return execution.exitCode ?? 0;
  if (execution.state === 'failed' && execution.exitCode !== null && execution.exitCode !== 0) {
    if (why !== '') ctx.stderr.write(`paddock: execution ${execution.id} failed${why}\n`);
    return execution.exitCode;
  }
  ctx.stderr.write(`paddock: execution ${execution.id} ${execution.state === 'cancelled' ? 'was cancelled' : 'failed'}${why}\n`);
  return 1;
}

function stoppedWaiting(ctx: Pick<Context, 'stderr'>, id: string): number {
  ctx.stderr.write(`paddock: stopped waiting; ${id} is being cancelled (see \`paddock status ${id}\`)\n`);
  return 130;
}
