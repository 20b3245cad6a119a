import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Env } from '@paddock/config';
import { processEnv } from './processEnv.js';

export interface ProcessSpec {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Env;
  readonly cwd?: string;
}

/** Wait before a restart: starts at `initialDelayMs`, doubles after each quick exit up to `maxDelayMs`. */
export interface RestartPolicy {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  /** A process that stayed up this long starts over from `initialDelayMs` when it next exits. */
  readonly resetAfterMs: number;
}

/**
 * Services wait for their dependencies instead of exiting, so an exit after a few seconds up is a kill or a
 * one-off crash, not a loop: only exits within `resetAfterMs` of the start back off further.
 */
export const DEFAULT_RESTART_POLICY: RestartPolicy = Object.freeze({ initialDelayMs: 500, maxDelayMs: 10_000, resetAfterMs: 5_000 });

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface SupervisorHooks {
  readonly onStart?: (pid: number) => void;
  /** One line of the process's output, without its line ending. */
  readonly onLine?: (stream: 'stdout' | 'stderr', line: string) => void;
  /** The process ended without being asked to; it is started again after `restartInMs`. */
  readonly onExit?: (exit: Exit & { readonly uptimeMs: number; readonly restartInMs: number }) => void;
  /** The command could not be started at all (not found, not executable); retried like an exit. */
  readonly onSpawnError?: (error: NodeJS.ErrnoException, restartInMs: number) => void;
}

/** What `stop()` leaves: how the last run ended (undefined when none was running) and whether it took SIGKILL. */
export interface Stopped {
  readonly name: string;
  readonly exit: Exit | undefined;
  readonly forced: boolean;
}

/** The delay before the next start, given the previous delay (undefined at first) and how long the run lasted. */
export function restartDelayMs(previousMs: number | undefined, uptimeMs: number, policy: RestartPolicy): number {
  if (previousMs === undefined || uptimeMs >= policy.resetAfterMs) return policy.initialDelayMs;
  return Math.min(previousMs * 2, policy.maxDelayMs);
}

/**
 * A child process kept running: restarted with backoff whenever it exits, until `stop()`, which sends
 * SIGTERM and, after the grace time, SIGKILL to its whole process group. Each child runs in its own
 * process group, so a Ctrl-C in the terminal reaches only its supervisor, which then stops the children
 * in the order it chooses. Its stdin is a pipe that stays open: a child can take end-of-file on it to
 * mean that its supervisor is gone.
 */
export class Supervised {
  readonly name: string;
  readonly #spec: ProcessSpec;
  readonly #policy: RestartPolicy;
  readonly #hooks: SupervisorHooks;
  #child: ChildProcess | undefined;
  #exited: Promise<Exit> | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  #delayMs: number | undefined;
  #stopping: Promise<Stopped> | undefined;
  #forced = false;

  private constructor(spec: ProcessSpec, policy: RestartPolicy, hooks: SupervisorHooks) {
    this.name = spec.name;
    this.#spec = spec;
    this.#policy = policy;
    this.#hooks = hooks;
  }

  static start(spec: ProcessSpec, opts: { policy?: RestartPolicy; hooks?: SupervisorHooks } = {}): Supervised {
    const supervised = new Supervised(spec, opts.policy ?? DEFAULT_RESTART_POLICY, opts.hooks ?? {});
    supervised.#spawn();
    return supervised;
  }

  /** The pid of the running process, if one is running. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Idempotent: every call returns the first call's result. */
  stop(graceMs: number): Promise<Stopped> {
    this.#stopping ??= this.#stop(graceMs);
    return this.#stopping;
  }

  /** Stops at once with SIGKILL, also cutting short a stop() that is still in its grace time. */
  kill(): Promise<Stopped> {
    const stopped = this.stop(0);
    const child = this.#child;
    if (child !== undefined) this.#killGroup(child);
    return stopped;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop(5_000);
  }

  #spawn(): void {
    const startedAt = Date.now();
    const child = spawn(this.#spec.command, [...this.#spec.args], {
      cwd: this.#spec.cwd,
      env: processEnv(this.#spec.env),
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    this.#child = child;
    let spawnError: NodeJS.ErrnoException | undefined;
    this.#exited = new Promise<Exit>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', (error) => {
        // After a successful spawn, 'error' only reports a failed kill(); 'exit' still follows.
        if (child.pid !== undefined) return;
        spawnError = error;
        resolve({ code: null, signal: null });
      });
    });
    child.stdin?.on('error', () => {});
    for (const stream of ['stdout', 'stderr'] as const) {
      const input = child[stream];
      if (input !== null) createInterface({ input, crlfDelay: Infinity }).on('line', (line) => this.#hooks.onLine?.(stream, line));
    }
    if (child.pid !== undefined) this.#hooks.onStart?.(child.pid);
    void this.#exited.then((exit) => this.#afterExit(child, exit, Date.now() - startedAt, spawnError));
  }

  #afterExit(child: ChildProcess, exit: Exit, uptimeMs: number, spawnError: NodeJS.ErrnoException | undefined): void {
    if (this.#child === child) this.#child = undefined;
    if (this.#stopping !== undefined) return;
    const restartInMs = restartDelayMs(this.#delayMs, uptimeMs, this.#policy);
    this.#delayMs = restartInMs;
    if (spawnError !== undefined) this.#hooks.onSpawnError?.(spawnError, restartInMs);
    else this.#hooks.onExit?.({ ...exit, uptimeMs, restartInMs });
    // A hook may have decided to stop us.
    if (this.#stopping !== undefined) return;
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#stopping === undefined) this.#spawn();
    }, restartInMs);
  }

  async #stop(graceMs: number): Promise<Stopped> {
    clearTimeout(this.#restartTimer);
    const child = this.#child;
    const exited = this.#exited;
    if (child === undefined || exited === undefined) return { name: this.name, exit: undefined, forced: false };
    child.kill('SIGTERM');
    const timer = setTimeout(() => this.#killGroup(child), graceMs);
    const exit = await exited;
    clearTimeout(timer);
    return { name: this.name, exit, forced: this.#forced };
  }

  #killGroup(child: ChildProcess): void {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    this.#forced = true;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  }
}
