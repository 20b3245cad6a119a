import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, resolve, sep } from 'node:path';

/** A tool the model may call: its JSON Schema and what it does. */
export interface Tool {
  readonly name: string;
  readonly description: string;
  readonly parameters: Record<string, unknown>;
}

export const TOOLS: readonly Tool[] = [
  {
    name: 'run_shell',
    description: 'Run a bash command in the workspace; returns its exit code, stdout and stderr.',
    parameters: {
      type: 'object',
      properties: { command: { type: 'string' }, timeout_s: { type: 'integer', minimum: 1 } },
      required: ['command'],
    },
  },
  {
    name: 'run_python',
    description: 'Run Python 3 code in the workspace; returns its exit code, stdout and stderr.',
    parameters: {
      type: 'object',
      properties: { code: { type: 'string' }, timeout_s: { type: 'integer', minimum: 1 } },
      required: ['code'],
    },
  },
  {
    name: 'write_file',
    description: 'Write a UTF-8 text file at a path relative to the workspace, creating folders.',
    parameters: { type: 'object', properties: { path: { type: 'string' }, content: { type: 'string' } }, required: ['path', 'content'] },
  },
  {
    name: 'read_file',
    description: 'Read a UTF-8 text file at a path relative to the workspace.',
    parameters: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'] },
  },
  {
    name: 'finish',
    description: 'End the task with a summary of what was done and the result.',
    parameters: { type: 'object', properties: { summary: { type: 'string' } }, required: ['summary'] },
  },
];

export interface ToolContext {
  readonly workspace: string;
  readonly commandTimeoutS: number;
  /** Largest output handed back to the model per stream, in bytes. */
  readonly maxOutputBytes: number;
  /** Where the tool's own output goes as it happens (the execution's live log). */
  readonly echo: (text: string) => void;
}

export class ToolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ToolError';
  }
}

/** Runs one tool call; the result is text for the model. Errors the model can fix are thrown as ToolError. */
export async function runTool(name: string, args: Record<string, unknown>, ctx: ToolContext): Promise<string> {
  switch (name) {
    case 'run_shell':
      return runProcess('bash', ['-c', stringArg(args, 'command')], timeoutOf(args, ctx), ctx);
    case 'run_python':
      return runProcess('python3', ['-u', '-c', stringArg(args, 'code')], timeoutOf(args, ctx), ctx);
    case 'write_file': {
      const path = inside(ctx.workspace, stringArg(args, 'path'));
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, stringArg(args, 'content'));
      return `wrote ${stringArg(args, 'path')}`;
    }
    case 'read_file':
      try {
        return clip(await readFile(inside(ctx.workspace, stringArg(args, 'path')), 'utf8'), ctx.maxOutputBytes);
      } catch (err) {
        throw new ToolError(`cannot read ${stringArg(args, 'path')}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    default:
      throw new ToolError(`there is no tool "${name}"; the tools are ${TOOLS.map((t) => t.name).join(', ')}`);
  }
}

function stringArg(args: Record<string, unknown>, key: string): string {
  const value = args[key];
  if (typeof value !== 'string') throw new ToolError(`argument "${key}" must be a string`);
  return value;
}

function timeoutOf(args: Record<string, unknown>, ctx: ToolContext): number {
  const asked = args['timeout_s'];
  return typeof asked === 'number' && asked > 0 ? Math.min(asked, ctx.commandTimeoutS) : ctx.commandTimeoutS;
}

function inside(workspace: string, path: string): string {
  const full = resolve(workspace, path);
  if (full !== workspace && !full.startsWith(workspace + sep)) throw new ToolError(`path ${path} is outside the workspace`);
  return full;
}

function clip(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text);
  if (bytes.length <= maxBytes) return text;
  return `${bytes.subarray(0, maxBytes).toString('utf8')}\n[... ${bytes.length - maxBytes} more bytes cut]`;
}

function runProcess(command: string, args: string[], timeoutS: number, ctx: ToolContext): Promise<string> {
  return new Promise((resolvePromise) => {
    const child = spawn(command, args, { cwd: ctx.workspace, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => {
      out.push(d);
      ctx.echo(d.toString('utf8'));
    });
    child.stderr.on('data', (d: Buffer) => {
      err.push(d);
      ctx.echo(d.toString('utf8'));
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-(child.pid ?? 0), 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutS * 1000);
    const finish = (status: string) => {
      clearTimeout(timer);
      const stdout = clip(Buffer.concat(out).toString('utf8'), ctx.maxOutputBytes);
      const stderr = clip(Buffer.concat(err).toString('utf8'), ctx.maxOutputBytes);
      resolvePromise(`${status}\nstdout:\n${stdout}\nstderr:\n${stderr}`);
    };
    child.once('error', (e) => finish(`could not run ${command}: ${e.message}`));
    child.once('close', (code, signal) =>
      finish(timedOut ? `killed after the ${timeoutS}s time limit` : code !== null ? `exit code ${code}` : `killed by ${signal ?? 'a signal'}`),
    );
  });
}
