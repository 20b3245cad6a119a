import { UsageError } from './errors.js';

/** `boolean` is a flag, `string` takes one value (the last one given wins), `list` may be repeated. */
export type OptionType = 'boolean' | 'string' | 'list';

export interface OptionSpec {
  readonly type: OptionType;
  /** One letter, used as `-x`. */
  readonly short?: string;
}

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

type ValueOf<T extends OptionSpec> = T['type'] extends 'boolean' ? boolean : T['type'] extends 'string' ? string | undefined : string[];

export type OptionValues<S extends OptionSpecs> = { -readonly [K in keyof S]: ValueOf<S[K]> };

export interface ParsedArgs<S extends OptionSpecs> {
  readonly options: OptionValues<S>;
  readonly positionals: string[];
  /** What follows `--` (or, with `stopAtPositional`, the first positional and all after it), untouched. */
  readonly rest: string[];
  /** `-h` or `--help` was given. */
  readonly help: boolean;
}

export interface ParseOptions {
  /** Options end at the first positional, as in `paddock run --image x ls -la`. */
  readonly stopAtPositional?: boolean;
  /** Named in usage errors. */
  readonly command?: string;
}

/**
 * Parses `--name value`, `--name=value`, `-x value`, boolean `--flag`/`-f`, repeated list options and
 * `--`. Unknown options and missing values are UsageErrors; `-` alone is a positional (stdin).
 */
export function parseArgs<S extends OptionSpecs>(argv: readonly string[], specs: S, opts: ParseOptions = {}): ParsedArgs<S> {
  const values: Record<string, boolean | string | string[] | undefined> = {};
  const byShort = new Map<string, string>();
  for (const [name, spec] of Object.entries(specs)) {
    values[name] = spec.type === 'boolean' ? false : spec.type === 'list' ? [] : undefined;
    if (spec.short !== undefined) byShort.set(spec.short, name);
  }
  const positionals: string[] = [];
  let rest: string[] = [];
  let help = false;

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      rest = argv.slice(i + 1);
      break;
    }
    if (arg === '-' || !arg.startsWith('-')) {
      if (opts.stopAtPositional) {
        rest = argv.slice(i);
        break;
      }
      positionals.push(arg);
      continue;
    }
    const long = arg.startsWith('--');
    const eq = long ? arg.indexOf('=') : -1;
    const key = long ? arg.slice(2, eq === -1 ? undefined : eq) : arg.slice(1);
    const inline = eq === -1 ? undefined : arg.slice(eq + 1);
    const name = long ? key : byShort.get(key);
    const spec = name === undefined ? undefined : specs[name];
    if (name === undefined || spec === undefined) {
      if (key === 'help' || key === 'h') {
        help = true;
        continue;
      }
      throw new UsageError(`unknown option ${arg}`, opts.command);
    }
    const flag = long ? `--${name}` : `-${key}`;
    if (spec.type === 'boolean') {
      if (inline !== undefined) throw new UsageError(`${flag} takes no value`, opts.command);
      values[name] = true;
      continue;
    }
    let value = inline;
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`${flag} needs a value`, opts.command);
      value = argv[++i] as string;
    }
    if (spec.type === 'list') (values[name] as string[]).push(value);
    else values[name] = value;
  }
  return { options: values as OptionValues<S>, positionals, rest, help };
}

/** A number option, checked: `--cpus 1.5`, `--limit 20`. */
export function numberOption(
  flag: string,
  raw: string,
  { integer = false, min = 0, exclusiveMin = false }: { integer?: boolean; min?: number; exclusiveMin?: boolean } = {},
): number {
  const value = Number(raw);
  const ok = raw.trim() !== '' && Number.isFinite(value) && (!integer || Number.isInteger(value)) && (exclusiveMin ? value > min : value >= min);
  if (!ok) {
    const kind = integer ? 'an integer' : 'a number';
    throw new UsageError(`${flag} expects ${kind} ${exclusiveMin ? 'above' : 'of at least'} ${min}, got "${raw}"`);
  }
  return value;
}
