const SAFE = /^[A-Za-z0-9_\-+=.,/:@%^]+$/;

/**
 * Joins arguments into one POSIX shell command line that splits back into exactly these arguments:
 * each one unquoted when it holds only safe characters, else in single quotes (a quote inside is `'\''`).
 */
export function shellQuote(args: readonly string[]): string {
  return args.map(quoteOne).join(' ');
}

function quoteOne(arg: string): string {
  if (SAFE.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}
