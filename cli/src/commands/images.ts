import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import { parseArgs, type OptionSpecs } from '../args.js';
import type { Command } from '../command.js';
import type { Context } from '../context.js';
import { CommandError, UsageError } from '../errors.js';
import { formatTable } from '../format.js';
import { processEnv } from '../processEnv.js';

const BUILD_OPTIONS = { force: { type: 'boolean' } } as const satisfies OptionSpecs;

/** A build.sh exits with this when its image needs a download this machine cannot reach (images/lib/derive.sh). */
const CANNOT_BUILD_HERE = 3;

/** Every image derives from base, so base is built first. */
const BASE = 'base';

export const images: Command = {
  name: 'images',
  summary: 'build or list the container images Paddock runs',
  usage: `Usage: paddock images build [--force] [NAME...]
       paddock images ls

build  builds the images from images/NAME/build.sh in this checkout (all of them when no NAME is given,
       base first). A build is skipped when its inputs did not change, unless --force. An image that
       needs a download this machine cannot reach says what is missing and is skipped.
ls     lists the images Paddock built (those labelled io.paddock.image).`,

  async run(ctx, argv) {
    const [sub, ...rest] = argv;
    if (sub === undefined) throw new UsageError('give a subcommand: build or ls', 'images');
    if (sub === '-h' || sub === '--help' || sub === 'help') {
      ctx.stdout.write(`${this.usage}\n`);
      return 0;
    }
    if (sub === 'build') return build(ctx, rest, this.usage);
    if (sub === 'ls') return list(ctx, rest, this.usage);
    throw new UsageError(`unknown subcommand "images ${sub}"`, 'images');
  },
};

/** The image folders of a checkout (those holding a build.sh), base first, then by name. */
export async function imageNames(imagesDir: string): Promise<string[]> {
  const entries = await readdir(imagesDir, { withFileTypes: true });
  const names = entries.filter((e) => e.isDirectory() && existsSync(join(imagesDir, e.name, 'build.sh'))).map((e) => e.name);
  return names.sort((a, b) => (a === BASE ? -1 : b === BASE ? 1 : a.localeCompare(b)));
}

async function build(ctx: Context, argv: readonly string[], usage: string): Promise<number> {
  const args = parseArgs(argv, BUILD_OPTIONS, { command: 'images' });
  if (args.help) {
    ctx.stdout.write(`${usage}\n`);
    return 0;
  }
  const imagesDir = join(ctx.repoRoot, 'images');
  const known = await imageNames(imagesDir);
  const wanted = [...args.positionals, ...args.rest];
  for (const name of wanted) {
    if (!known.includes(name)) throw new UsageError(`no image "${name}" (known: ${known.join(', ')})`, 'images');
  }
  const order = wanted.length === 0 ? known : known.filter((name) => wanted.includes(name));
  // The builds print their own progress straight to the terminal; a Ctrl-C reaches them directly.
  const unsubscribe = ctx.interrupts.subscribe(() => {});
  const notHere: string[] = [];
  const failed: string[] = [];
  try {
    for (const name of order) {
      const script = join(imagesDir, name, 'build.sh');
      const status = await runInherited('bash', [script, ...(args.options.force ? ['--force'] : [])], ctx);
      if (status === CANNOT_BUILD_HERE) notHere.push(name);
      else if (status !== 0) failed.push(`${name} (${script} exited with ${status})`);
    }
  } finally {
    unsubscribe();
  }
  if (notHere.length > 0) {
    ctx.stderr.write(`paddock: not built on this machine, each needs a download it cannot reach (see above): ${notHere.join(', ')}\n`);
  }
  if (failed.length > 0) throw new CommandError(`building failed: ${failed.join('; ')}`);
  // Naming an image that cannot be built here is a failure; building "all" is not, when the rest built.
  return wanted.some((name) => notHere.includes(name)) ? 1 : 0;
}

interface DockerImageRow {
  readonly Repository: string;
  readonly Tag: string;
  readonly Size: string;
  readonly CreatedSince: string;
}

async function list(ctx: Context, argv: readonly string[], usage: string): Promise<number> {
  const args = parseArgs(argv, {}, { command: 'images' });
  if (args.help) {
    ctx.stdout.write(`${usage}\n`);
    return 0;
  }
  if (args.positionals.length > 0 || args.rest.length > 0) throw new UsageError('images ls takes no arguments', 'images');
  const out = await capture('docker', ['image', 'ls', '--filter', 'label=io.paddock.image', '--format', '{{json .}}'], ctx);
  const rows = out
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as DockerImageRow);
  if (rows.length === 0) {
    ctx.stderr.write('no Paddock images yet: build them with `paddock images build`\n');
    return 0;
  }
  ctx.stdout.write(`${formatTable(['NAME', 'TAG', 'SIZE', 'CREATED'], rows.map((r) => [r.Repository, r.Tag, r.Size, r.CreatedSince]))}\n`);
  return 0;
}

function runInherited(command: string, args: readonly string[], ctx: Context): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ctx.repoRoot, env: processEnv(ctx.env), stdio: 'inherit' });
    child.once('error', (err) => reject(new CommandError(`cannot run ${command}: ${err.message}`, { cause: err })));
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : constants.signals[signal])));
  });
}

function capture(command: string, args: readonly string[], ctx: Context): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: processEnv(ctx.env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', (err) => reject(new CommandError(`cannot run ${command}: ${err.message}`, { cause: err })));
    child.once('close', (code) => {
      if (code === 0) resolve(stdout);
      else reject(new CommandError(`${command} ${args.slice(0, 2).join(' ')} failed: ${stderr.trim() || `exit status ${code}`}`));
    });
  });
}
