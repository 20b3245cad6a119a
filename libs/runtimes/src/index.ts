/**
 * The agent runtimes Paddock knows by short name: the image each runs in and the command that gives it a
 * prompt non-interactively. The gateway validates names against this list; the broker turns a name into
 * a container; `paddock images build` builds the images (images/<name>/build.sh).
 *
 * A command is bash, run by the image's entrypoint in tmux session `agent`, in /workspace, as the agent
 * user, with the prompt in "$PROMPT".
 */
export interface Runtime {
  readonly name: string;
  readonly image: string;
  /** What it is, for listings and errors. */
  readonly summary: string;
  readonly command: string;
}

const runtime = (name: string, summary: string, command: string): Runtime => Object.freeze({ name, image: `paddock/${name}:latest`, summary, command });

export const RUNTIMES: readonly Runtime[] = Object.freeze([
  runtime('task', "Paddock's built-in task agent (OpenAI or Anthropic tool calling)", 'paddock-task'),
  runtime('claude-code', 'Claude Code (@anthropic-ai/claude-code)', 'claude -p "$PROMPT" --dangerously-skip-permissions'),
  runtime('gemini-cli', 'Gemini CLI (@google/gemini-cli)', 'gemini --yolo -p "$PROMPT"'),
  runtime('opencode', 'OpenCode (opencode-ai)', 'opencode run "$PROMPT"'),
  runtime('copilot', 'GitHub Copilot CLI (@github/copilot)', 'copilot -p "$PROMPT" --allow-all-tools'),
  runtime('codex', 'OpenAI Codex CLI (@openai/codex)', 'codex exec --skip-git-repo-check --dangerously-bypass-approvals-and-sandbox "$PROMPT"'),
  runtime('aider', 'Aider (aider-chat, from PyPI)', 'aider --yes-always --no-check-update --message "$PROMPT"'),
  runtime('cursor', "Cursor's agent CLI (cursor-agent)", 'cursor-agent --print --force "$PROMPT"'),
]);

export const RUNTIME_NAMES: readonly string[] = RUNTIMES.map((r) => r.name);

export function findRuntime(name: string): Runtime | undefined {
  return RUNTIMES.find((r) => r.name === name);
}

/** The runtime whose image this is (`paddock/<name>:latest` or `paddock/<name>`), if any. */
export function runtimeOfImage(image: string): Runtime | undefined {
  const name = /^paddock\/([a-z0-9-]+)(?::latest)?$/.exec(image)?.[1];
  return name === undefined ? undefined : findRuntime(name);
}
