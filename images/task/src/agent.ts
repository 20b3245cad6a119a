import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Conversation, ToolResult } from './providers.js';
import { runTool, ToolError, type ToolContext } from './tools.js';

export const SYSTEM_PROMPT = `You are a careful engineer working in a Linux container, in the folder /workspace.
Do the task you are given by calling tools: run_shell and run_python run code, write_file and read_file
handle files. Check your work by running it. Keep results the user asked for as files in /workspace.
When the task is done, call finish with a short summary that states the result.`;

export interface AgentOptions {
  readonly conversation: Conversation;
  readonly tools: ToolContext;
  readonly maxSteps: number;
  readonly resultFile: string;
  readonly say: (line: string) => void;
}

export interface AgentOutcome {
  readonly finished: boolean;
  readonly steps: number;
  readonly summary: string;
  readonly usage: Record<string, { inputTokens: number; outputTokens: number }>;
}

/** The plan-act loop: ask the model, run the tools it calls, hand back the results, until it finishes. */
export async function runAgent(opts: AgentOptions): Promise<AgentOutcome> {
  const { conversation, say } = opts;
  const usage: AgentOutcome['usage'] = {};
  const log: string[] = [];
  let summary = '';
  let finished = false;
  let steps = 0;
  while (!finished && steps < opts.maxSteps) {
    steps += 1;
    const turn = await conversation.next();
    const used = (usage[turn.model] ??= { inputTokens: 0, outputTokens: 0 });
    used.inputTokens += turn.inputTokens;
    used.outputTokens += turn.outputTokens;
    if (turn.text.trim() !== '') say(`step ${steps}: ${turn.text.trim()}`);
    if (turn.toolCalls.length === 0) {
      // A plain answer with no tool to run is the model's last word.
      summary = turn.text.trim();
      finished = true;
      break;
    }
    const results: ToolResult[] = [];
    for (const call of turn.toolCalls) {
      if (call.name === 'finish') {
        summary = typeof call.args['summary'] === 'string' ? call.args['summary'] : JSON.stringify(call.args);
        finished = true;
        results.push({ call, content: 'finished', isError: false });
        continue;
      }
      say(`step ${steps}: ${call.name} ${describe(call.args)}`);
      log.push(`- ${call.name} ${describe(call.args)}`);
      try {
        results.push({ call, content: await runTool(call.name, call.args, opts.tools), isError: false });
      } catch (err) {
        if (!(err instanceof ToolError)) throw err;
        say(`step ${steps}: ${call.name} failed: ${err.message}`);
        results.push({ call, content: err.message, isError: true });
      }
    }
    conversation.addToolResults(results);
  }
  if (!finished) summary = `Stopped after ${steps} steps (the limit) before the task was finished.`;
  await writeFile(
    opts.resultFile,
    `# Result\n\n${summary || '(no summary)'}\n\n## Steps\n\n${log.join('\n') || '(none)'}\n\n## Tokens\n\n${Object.entries(usage)
      .map(([model, u]) => `- ${model}: ${u.inputTokens} in, ${u.outputTokens} out`)
      .join('\n')}\n`,
  );
  return { finished, steps, summary, usage };
}

function describe(args: Record<string, unknown>): string {
  const main = args['command'] ?? args['code'] ?? args['path'];
  const text = typeof main === 'string' ? main : JSON.stringify(args);
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

export function resultPath(workspace: string): string {
  return join(workspace, 'RESULT.md');
}
