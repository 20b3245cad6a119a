import { createHash, randomInt } from 'node:crypto';
import { buffer } from 'node:stream/consumers';
import { pack } from 'tar-stream';
import { ExecutionKind, type ExecutionSpec } from '@paddock/proto';
import { findRuntime } from '@paddock/runtimes';
import { AGENT, RUN_DIR, runsUnderEntrypoint, SCRIPT_PATH, usesRunDir, WORKSPACE } from './containerSpec.js';

const UID = 1000;
const GID = 1000;

/** A tar and the directory of the container it is extracted into (the engine's putArchive). */
export interface ArchivePut {
  readonly path: string;
  readonly tar: Buffer;
}

export interface WorkspaceArchiveOptions {
  /** The image is one of Paddock's: its container's root filesystem is read-only (containerSpec's imageIsOurs). */
  readonly imageIsOurs: boolean;
  /** The workspace is a folder of the host mounted at /workspace, filled before the container starts. */
  readonly workspaceOnHost?: boolean;
  /** The instance's SSH password: only its hash is put in the container, for sshd to check. */
  readonly sshPassword?: string;
}

/** One file or directory to put, by its absolute path in the container. */
type Entry = { readonly path: string; readonly mode: number; readonly uid: number; readonly gid: number } & (
  | { readonly type: 'directory' }
  | { readonly type: 'file'; readonly content: Buffer }
);

/**
 * What the broker puts in a created container before its job starts: the request's files in /workspace
 * (owned by the job's user), the Python script, and an agent's workflow, prompt and secrets in RUN_DIR
 * (root-owned directories: the job reads them and cannot fill them). The SSH password goes in as a SHA-512
 * crypt hash only.
 *
 * In a container of one of Paddock's images the root filesystem is read-only and the engine writes only
 * into volumes, so there is one tar per volume (/workspace when it is not the host's, RUN_DIR), each
 * extracted at its root, whose owner comes from the image. In any other image it is one tar extracted at
 * `/` that also makes /workspace, owned by uid 1000, so that any image works. Empty when there is nothing
 * to put.
 */
export async function workspaceArchives(spec: ExecutionSpec, opts: WorkspaceArchiveOptions): Promise<ArchivePut[]> {
  const entries = entriesOf(spec, opts);
  if (!opts.imageIsOurs) return entries.length === 0 ? [] : [{ path: '/', tar: await tarOf(entries, '/') }];
  const puts: ArchivePut[] = [];
  for (const mount of [WORKSPACE, RUN_DIR]) {
    const inside = entries.filter((e) => e.path.startsWith(`${mount}/`));
    if (inside.length > 0) puts.push({ path: mount, tar: await tarOf(inside, mount) });
  }
  return puts;
}

function entriesOf(spec: ExecutionSpec, opts: WorkspaceArchiveOptions): Entry[] {
  // A workspace on the host is a mounted folder, filled before the container starts.
  const files = opts.workspaceOnHost ? [] : Object.entries(spec.files);
  const agent = spec.kind === ExecutionKind.EXECUTION_KIND_AGENT ? spec.agent : undefined;
  const entries: Entry[] = [];
  const dirs = new Set<string>();
  // Every directory comes before what it holds, so extraction never makes one with the engine's defaults.
  const dir = (path: string, uid: number, gid: number) => {
    if (dirs.has(path)) return;
    dirs.add(path);
    entries.push({ path, type: 'directory', mode: 0o755, uid, gid });
  };
  const file = (path: string, mode: number, uid: number, gid: number, content: Buffer) => entries.push({ path, type: 'file', mode, uid, gid, content });
  // Parents of RUN_DIR and RUN_DIR itself, as the base image has them: made only in an image that lacks them.
  const runDir = () => {
    const parts = RUN_DIR.split('/');
    for (let i = 2; i <= parts.length; i++) dir(parts.slice(0, i).join('/'), 0, 0);
  };

  // In one of Paddock's images /workspace is a volume whose owner comes from the image.
  if (!opts.workspaceOnHost && !opts.imageIsOurs) dir(WORKSPACE, UID, GID);
  for (const [path, content] of files.sort(([a], [b]) => a.localeCompare(b))) {
    const parts = path.split('/');
    // The gateway rejects these already; a path must never leave the workspace whoever sent it.
    if (path.startsWith('/') || parts.some((p) => p === '..' || p === '.' || p === '')) {
      throw new Error(`file path "${path}" must be relative and stay inside the workspace`);
    }
    for (let i = 1; i < parts.length; i++) dir(`${WORKSPACE}/${parts.slice(0, i).join('/')}`, UID, GID);
    file(`${WORKSPACE}/${path}`, 0o644, UID, GID, Buffer.from(content));
  }
  if (usesRunDir(spec)) runDir();
  if (spec.kind === ExecutionKind.EXECUTION_KIND_PYTHON) file(SCRIPT_PATH, 0o644, 0, 0, Buffer.from(spec.script, 'utf8'));
  if (runsUnderEntrypoint(spec)) {
    file(AGENT.workflow, 0o644, 0, 0, Buffer.from(workflowOf(spec)));
    const secrets = AGENT.repoToken.slice(0, AGENT.repoToken.lastIndexOf('/'));
    // Read by the entrypoint and the agent's tools, which run as the job's user.
    if (agent) file(AGENT.prompt, 0o400, UID, GID, Buffer.from(agent.prompt, 'utf8'));
    if (agent?.repoToken) {
      dir(secrets, 0, 0);
      file(AGENT.repoToken, 0o400, UID, GID, Buffer.from(agent.repoToken, 'utf8'));
    }
    if (opts.sshPassword) {
      dir(secrets, 0, 0);
      // sshd runs as the job's user, so the job can read what sshd reads: a hash, never the password.
      file(AGENT.sshPasswordHash, 0o400, UID, GID, Buffer.from(sha512Crypt(opts.sshPassword, randomSalt()), 'utf8'));
    }
  }
  return entries;
}

/** The entries as a tar whose names are relative to `base`, a directory of the container. */
function tarOf(entries: readonly Entry[], base: string): Promise<Buffer> {
  const prefix = base === '/' ? '/' : `${base}/`;
  const tar = pack();
  const done = buffer(tar);
  const mtime = new Date();
  for (const e of entries) {
    const name = e.path.slice(prefix.length);
    if (e.type === 'directory') tar.entry({ name: `${name}/`, type: 'directory', mode: e.mode, uid: e.uid, gid: e.gid, mtime });
    else tar.entry({ name, mode: e.mode, uid: e.uid, gid: e.gid, mtime }, e.content);
  }
  tar.finalize();
  return done;
}

/** The script the entrypoint runs in tmux: the runtime's command, or the job of a service. */
function workflowOf(spec: ExecutionSpec): string {
  if (spec.kind === ExecutionKind.EXECUTION_KIND_AGENT) {
    const runtime = findRuntime(spec.agent?.runtime ?? '');
    if (!runtime) throw new Error(`unknown agent runtime "${spec.agent?.runtime ?? ''}"`);
    return `# ${runtime.summary}\nPROMPT="$(cat "$PADDOCK_PROMPT_FILE")"\nexport PROMPT\n${runtime.command}\n`;
  }
  if (spec.kind === ExecutionKind.EXECUTION_KIND_PYTHON) return `exec python3 -u ${SCRIPT_PATH}\n`;
  return `${spec.command}\n`;
}

/** crypt(3)'s alphabet for salts and hashes. */
const CRYPT_ALPHABET = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const SALT_LENGTH = 16;
const ROUNDS = 5000;

function randomSalt(): string {
  let salt = '';
  for (let i = 0; i < SALT_LENGTH; i++) salt += CRYPT_ALPHABET[randomInt(CRYPT_ALPHABET.length)];
  return salt;
}

/** `length` bytes of `block` repeated. */
function repeated(block: Buffer, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i += block.length) block.copy(out, i, 0, Math.min(block.length, length - i));
  return out;
}

/** The order in which SHA-512 crypt encodes the digest's bytes, three at a time. */
const SHA512_CRYPT_ORDER: readonly (readonly [number, number, number])[] = [
  [0, 21, 42], [22, 43, 1], [44, 2, 23], [3, 24, 45], [25, 46, 4], [47, 5, 26], [6, 27, 48], [28, 49, 7],
  [50, 8, 29], [9, 30, 51], [31, 52, 10], [53, 11, 32], [12, 33, 54], [34, 55, 13], [56, 14, 35],
  [15, 36, 57], [37, 58, 16], [59, 17, 38], [18, 39, 60], [40, 61, 19], [62, 20, 41],
];

/**
 * SHA-512 crypt (`$6$salt$...`, Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512", 5000 rounds), the
 * format of /etc/shadow that sshd checks a password against with crypt(3). Node has no crypt(3).
 */
export function sha512Crypt(password: string, salt: string): string {
  const sha512 = (...parts: Buffer[]) => {
    const h = createHash('sha512');
    for (const p of parts) h.update(p);
    return h.digest();
  };
  const p = Buffer.from(password, 'utf8');
  const s = Buffer.from(salt.slice(0, SALT_LENGTH), 'utf8');
  const b = sha512(p, s, p);
  const aParts = [p, s, repeated(b, p.length)];
  for (let n = p.length; n > 0; n >>= 1) aParts.push(n & 1 ? b : p);
  const a = sha512(...aParts);
  const pSeq = repeated(sha512(...Array<Buffer>(p.length).fill(p)), p.length);
  const sSeq = repeated(sha512(...Array<Buffer>(16 + (a[0] ?? 0)).fill(s)), s.length);
  let c = a;
  for (let i = 0; i < ROUNDS; i++) {
    const parts = [i & 1 ? pSeq : c];
    if (i % 3 !== 0) parts.push(sSeq);
    if (i % 7 !== 0) parts.push(pSeq);
    parts.push(i & 1 ? c : pSeq);
    c = sha512(...parts);
  }
  const encode = (w: number, chars: number) => {
    let out = '';
    for (let i = 0; i < chars; i++, w >>= 6) out += CRYPT_ALPHABET[w & 0x3f];
    return out;
  };
  const byte = (i: number) => c[i] ?? 0;
  const hash = SHA512_CRYPT_ORDER.map(([b2, b1, b0]) => encode((byte(b2) << 16) | (byte(b1) << 8) | byte(b0), 4)).join('') + encode(byte(63), 2);
  return `$6$${s.toString('utf8')}$${hash}`;
}
