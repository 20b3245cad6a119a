import type { Context } from './context.js';

/** One `paddock` subcommand. `run` resolves to the exit status. */
export interface Command {
  readonly name: string;
  /** One line for `paddock help`. */
  readonly summary: string;
  /** The text `paddock <name> --help` prints. */
  readonly usage: string;
  run(ctx: Context, argv: readonly string[]): Promise<number>;
}
