import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';

const TAIL_LINES = 20;

/** One append-only log file per process under PADDOCK_HOME/logs, and the last lines of each kept in memory for error messages. */
export class LogFiles {
  readonly #dir: string;
  readonly #streams = new Map<string, WriteStream>();
  readonly #tails = new Map<string, string[]>();

  constructor(dir: string) {
    this.#dir = dir;
  }

  path(name: string): string {
    return join(this.#dir, `${name}.log`);
  }

  write(name: string, line: string): void {
    let stream = this.#streams.get(name);
    if (stream === undefined) {
      stream = createWriteStream(this.path(name), { flags: 'a' });
      // A full disk must not take Paddock down; the terminal still shows the services' output.
      stream.on('error', () => {});
      this.#streams.set(name, stream);
    }
    stream.write(`${line}\n`);
    const tail = this.#tails.get(name) ?? [];
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
    this.#tails.set(name, tail);
  }

  tail(name: string): readonly string[] {
    return this.#tails.get(name) ?? [];
  }

  async close(): Promise<void> {
    await Promise.all(
      [...this.#streams.values()].map(async (stream) => {
        stream.end();
        if (!stream.closed) await once(stream, 'close');
      }),
    );
    this.#streams.clear();
  }
}
