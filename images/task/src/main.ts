#!/usr/bin/env node
// paddock-task: the built-in task runtime. Reads the prompt, talks to an OpenAI- or Anthropic-compatible
// provider, runs the tools it calls, and writes RESULT.md into the workspace.
import { resultPath, runAgent, SYSTEM_PROMPT } from './agent.js';
import { taskConfig, TaskConfigError } from './config.js';
import { AnthropicConversation, OpenAiConversation, ProviderError } from './providers.js';
import { TOOLS } from './tools.js';

const say = (line: string) => process.stdout.write(`[task] ${line}\n`);

try {
  const config = taskConfig(process.env, process.cwd());
  say(`${config.provider} model ${config.model} at ${config.baseUrl}; up to ${config.maxSteps} steps`);
  const options = {
    baseUrl: config.baseUrl,
    apiKey: config.apiKey,
    model: config.model,
    system: SYSTEM_PROMPT,
    prompt: config.prompt,
    tools: TOOLS,
    maxTokens: 4096,
    requestTimeoutMs: config.requestTimeoutMs,
  };
  const conversation = config.provider === 'openai' ? new OpenAiConversation(options) : new AnthropicConversation(options);
  const outcome = await runAgent({
    conversation,
    tools: { workspace: config.workspace, commandTimeoutS: config.commandTimeoutS, maxOutputBytes: 16 * 1024, echo: (t) => process.stdout.write(t) },
    maxSteps: config.maxSteps,
    resultFile: resultPath(config.workspace),
    say,
  });
  for (const [model, u] of Object.entries(outcome.usage)) say(`tokens ${model}: ${u.inputTokens} in, ${u.outputTokens} out`);
  say(outcome.finished ? `done in ${outcome.steps} steps: ${outcome.summary}` : `stopped: the step limit (${config.maxSteps}) was reached`);
  process.exitCode = outcome.finished ? 0 : 2;
} catch (err) {
  if (err instanceof TaskConfigError || err instanceof ProviderError) {
    say(`error: ${err.message}`);
    process.exitCode = 1;
  } else {
    throw err;
  }
}
