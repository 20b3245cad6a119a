import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { RunningPaddock } from '@paddock/testkit';

const CLI_MAIN = fileURLToPath(new URL('../../../../cli/dist/src/main.js', import.meta.url));

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A `paddock` process that is still running: its output so far, and its end. */
export interface RunningCli {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  readonly done: Promise<CliResult>;
}

/**
 * The real CLI as a user runs it against `paddock`: only PADDOCK_HOME and PADDOCK_PORT are set, so it
 * finds the API and reads the admin token the way it does by default.
 */
export function spawnCli(paddock: RunningPaddock, args: readonly string[], opts: { input?: string; cwd?: string; keepStdinOpen?: boolean } = {}): RunningCli {
  const env: NodeJS.ProcessEnv = { ...process.env, PADDOCK_HOME: paddock.home, PADDOCK_PORT: new URL(paddock.url).port };
  delete env['PADDOCK_TOKEN'];
  delete env['PADDOCK_URL'];
  const child = spawn(process.execPath, [CLI_MAIN, ...args], { env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin!.on('error', () => {});
  if (opts.keepStdinOpen) child.stdin!.write(opts.input ?? '');
  else child.stdin!.end(opts.input ?? '');
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, stdout: () => stdout, stderr: () => stderr, done };
}

/** Runs the CLI to its end. */
export function cli(paddock: RunningPaddock, args: readonly string[], opts: { input?: string; cwd?: string } = {}): Promise<CliResult> {
  return spawnCli(paddock, args, opts).done;
}
