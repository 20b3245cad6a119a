import { pack } from 'tar-stream';
import { buffer } from 'node:stream/consumers';
import { ExecutionKind, type ExecutionSpec } from '@paddock/proto';
import { findRuntime } from '@paddock/runtimes';
import { AGENT, runsUnderEntrypoint, SCRIPT_PATH, WORKSPACE } from './containerSpec.js';

const UID = 1000;
const GID = 1000;

/**
 * The tar put at `/` before the job starts: /workspace owned by the job's user (so any image works), the
 * request's files inside it, and the Python script. Null when the image already has all it needs.
 */
export async function workspaceArchive(
  spec: ExecutionSpec,
  imageIsOurs: boolean,
  opts: { sshPassword?: string; workspaceOnHost?: boolean } = {},
): Promise<Buffer | null> {
  // A workspace on the host is a mounted folder, filled before the container starts.
  const files = opts.workspaceOnHost ? [] : Object.entries(spec.files);
  const python = spec.kind === ExecutionKind.EXECUTION_KIND_PYTHON;
  const agent = spec.kind === ExecutionKind.EXECUTION_KIND_AGENT ? spec.agent : undefined;
  const entrypoint = runsUnderEntrypoint(spec);
  if ((imageIsOurs || opts.workspaceOnHost) && files.length === 0 && !python && !entrypoint) return null;

  const tar = pack();
  const done = buffer(tar);
  const mtime = new Date();
  const dirs = new Set<string>();
  const dir = (name: string, uid: number, gid: number) => {
    if (dirs.has(name)) return;
    dirs.add(name);
    tar.entry({ name: `${name}/`, type: 'directory', mode: 0o755, uid, gid, mtime });
  };
  const ws = WORKSPACE.slice(1);
  if (!opts.workspaceOnHost) dir(ws, UID, GID);
  for (const [path, content] of files.sort(([a], [b]) => a.localeCompare(b))) {
    const parts = path.split('/');
    // The gateway rejects these already; a path must never leave the workspace whoever sent it.
    if (path.startsWith('/') || parts.some((p) => p === '..' || p === '.' || p === '')) {
      throw new Error(`file path "${path}" must be relative and stay inside the workspace`);
    }
    for (let i = 1; i < parts.length; i++) dir(`${ws}/${parts.slice(0, i).join('/')}`, UID, GID);
    tar.entry({ name: `${ws}/${path}`, mode: 0o644, uid: UID, gid: GID, mtime }, Buffer.from(content));
  }
  if (python) {
    const scriptDir = SCRIPT_PATH.slice(1, SCRIPT_PATH.lastIndexOf('/'));
    const top = scriptDir.split('/')[0] ?? scriptDir;
    dir(top, 0, 0);
    dir(scriptDir, 0, 0);
    tar.entry({ name: SCRIPT_PATH.slice(1), mode: 0o644, uid: 0, gid: 0, mtime }, Buffer.from(spec.script, 'utf8'));
  }
  if (entrypoint) {
    const runDir = AGENT.workflow.slice(1, AGENT.workflow.lastIndexOf('/'));
    dir(runDir.split('/')[0] ?? runDir, 0, 0);
    dir(runDir.split('/').slice(0, 2).join('/'), 0, 0);
    dir(runDir, UID, GID);
    tar.entry({ name: AGENT.workflow.slice(1), mode: 0o644, uid: UID, gid: GID, mtime }, Buffer.from(workflowOf(spec)));
    const secrets = AGENT.repoToken.slice(1, AGENT.repoToken.lastIndexOf('/'));
    if (agent) {
      tar.entry({ name: AGENT.prompt.slice(1), mode: 0o600, uid: UID, gid: GID, mtime }, Buffer.from(agent.prompt, 'utf8'));
      if (agent.repoToken) {
        dir(secrets, UID, GID);
        tar.entry({ name: AGENT.repoToken.slice(1), mode: 0o400, uid: UID, gid: GID, mtime }, Buffer.from(agent.repoToken, 'utf8'));
      }
    }
    if (opts.sshPassword) {
      dir(secrets, UID, GID);
      // Read (and removed) by the entrypoint while it is still root; the agent user never sees it.
      tar.entry({ name: AGENT.sshPassword.slice(1), mode: 0o400, uid: 0, gid: 0, mtime }, Buffer.from(opts.sshPassword, 'utf8'));
    }
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
