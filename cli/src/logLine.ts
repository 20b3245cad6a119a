const LEVELS: Readonly<Record<number, string>> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
// Every service line carries these; the prefix already says which service it is.
const OMITTED = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name', 'service', 'err', 'v']);

/**
 * A pino JSON line made readable for a terminal: `12:03:04 INFO  message key=value`, an error's stack on
 * the lines below. Anything that is not a pino line comes back as it is.
 */
export function formatLogLine(line: string): string {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    return line;
  }
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return line;
  const fields = record as Record<string, unknown>;
  if (typeof fields['level'] !== 'number' || typeof fields['msg'] !== 'string') return line;
  const level = (LEVELS[fields['level']] ?? String(fields['level'])).padEnd(5);
  const time = typeof fields['time'] === 'number' ? `${clock(new Date(fields['time']))} ` : '';
  const extras = Object.entries(fields)
    .filter(([key]) => !OMITTED.has(key))
    .map(([key, value]) => `${key}=${typeof value === 'string' && !/\s/.test(value) ? value : JSON.stringify(value)}`);
  let out = [`${time}${level} ${fields['msg']}`, ...extras].join(' ');
  const err = fields['err'];
  if (typeof err === 'object' && err !== null) {
    const { stack, message } = err as { stack?: unknown; message?: unknown };
    if (typeof stack === 'string') out += `\n${stack}`;
    else if (typeof message === 'string') out += ` err=${JSON.stringify(message)}`;
  }
  return out;
}

function clock(date: Date): string {
  return [date.getHours(), date.getMinutes(), date.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}
