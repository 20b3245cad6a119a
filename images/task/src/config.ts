import { readFileSync } from 'node:fs';

export type ProviderName = 'openai' | 'anthropic';

export interface TaskConfig {
  readonly prompt: string;
  readonly provider: ProviderName;
  readonly baseUrl: string;
  readonly apiKey: string;
  readonly model: string;
  readonly maxSteps: number;
  readonly commandTimeoutS: number;
  readonly requestTimeoutMs: number;
  readonly workspace: string;
}

export class TaskConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TaskConfigError';
  }
}

type Env = Record<string, string | undefined>;

function positiveInt(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new TaskConfigError(`${name} must be a whole number >= 1, got "${raw}"`);
  return n;
}

/**
 * The provider comes from PADDOCK_TASK_PROVIDER, or from which provider's variables are set (OpenAI's
 * first when both are). The prompt is $PROMPT, or the file $PADDOCK_PROMPT_FILE.
 */
export function taskConfig(env: Env, cwd: string): TaskConfig {
  const prompt = env['PROMPT'] ?? (env['PADDOCK_PROMPT_FILE'] ? readFileSync(env['PADDOCK_PROMPT_FILE'], 'utf8') : '');
  if (prompt.trim() === '') throw new TaskConfigError('no prompt: set PROMPT or PADDOCK_PROMPT_FILE');
  const has = (prefix: string) => Boolean(env[`${prefix}_API_KEY`] || env[`${prefix}_BASE_URL`]);
  const asked = env['PADDOCK_TASK_PROVIDER'];
  if (asked !== undefined && asked !== '' && asked !== 'openai' && asked !== 'anthropic') {
    throw new TaskConfigError(`PADDOCK_TASK_PROVIDER must be openai or anthropic, got "${asked}"`);
  }
  const provider: ProviderName | undefined = asked ? (asked as ProviderName) : has('OPENAI') ? 'openai' : has('ANTHROPIC') ? 'anthropic' : undefined;
  if (provider === undefined) {
    throw new TaskConfigError('no LLM provider: set OPENAI_API_KEY (and OPENAI_BASE_URL for another endpoint) or ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL), in the request env or as secrets');
  }
  const prefix = provider === 'openai' ? 'OPENAI' : 'ANTHROPIC';
  return Object.freeze({
    prompt,
    provider,
    baseUrl: env[`${prefix}_BASE_URL`] || (provider === 'openai' ? 'https://api.openai.com/v1' : 'https://api.anthropic.com'),
    apiKey: env[`${prefix}_API_KEY`] ?? '',
    model: env['PADDOCK_TASK_MODEL'] || env[`${prefix}_MODEL`] || (provider === 'openai' ? 'gpt-4.1' : 'claude-sonnet-4-5'),
    maxSteps: positiveInt(env, 'PADDOCK_TASK_MAX_STEPS', 30),
    commandTimeoutS: positiveInt(env, 'PADDOCK_TASK_COMMAND_TIMEOUT_S', 120),
    requestTimeoutMs: positiveInt(env, 'PADDOCK_TASK_REQUEST_TIMEOUT_S', 300) * 1000,
    workspace: cwd,
  });
}
