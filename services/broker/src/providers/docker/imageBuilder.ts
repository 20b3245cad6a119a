import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { runtimeOfImage } from '@paddock/runtimes';

/**
 * Builds Paddock's own images on demand (images/<name>/build.sh), when an execution names a runtime whose
 * image is not in the engine yet. One build per image at a time: later callers wait for the same one.
 */
export class ImageBuilder {
  readonly #imagesDir: string;
  readonly #building = new Map<string, Promise<void>>();

  constructor(imagesDir: string) {
    this.#imagesDir = imagesDir;
  }

  /** The image folder that builds `image`, when Paddock knows how. */
  recipeFor(image: string): string | undefined {
    const name = /^paddock\/base(:latest)?$/.test(image) ? 'base' : runtimeOfImage(image)?.name;
    if (name === undefined) return undefined;
    return existsSync(join(this.#imagesDir, name, 'build.sh')) ? name : undefined;
  }

  /** Runs the build, handing each line it prints to `onLine`; rejects with the end of its output when it fails. */
  build(name: string, onLine: (line: string) => void): Promise<void> {
    let running = this.#building.get(name);
    if (running === undefined) {
      running = this.#run(name, onLine).finally(() => this.#building.delete(name));
      this.#building.set(name, running);
    } else {
      onLine(`another execution is building this image; waiting for it`);
    }
    return running;
  }

  #run(name: string, onLine: (line: string) => void): Promise<void> {
    const script = join(this.#imagesDir, name, 'build.sh');
    return new Promise((resolve, reject) => {
      const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
      const tail: string[] = [];
      for (const stream of [child.stdout, child.stderr]) {
        createInterface({ input: stream, crlfDelay: Infinity }).on('line', (raw) => {
          const line = raw.replace(/\x1b\[[0-9;]*m/g, '');
          tail.push(line);
          if (tail.length > 10) tail.shift();
          onLine(line);
        });
      }
      child.once('error', (err) => reject(new Error(`cannot run ${script}: ${err.message}`)));
      child.once('close', (code) => {
        if (code === 0) resolve();
        else reject(new Error(`building image ${name} failed (exit status ${code}): ${tail.slice(-3).join(' | ')}`));
      });
    });
  }
}
