import { PermanentError } from '@paddock/errors';
import type { ComputeUsage, ExecutionAccount, LlmUsage } from '@paddock/proto';

/** One event for the ledger, as it came off the bus and was checked. */
export type UsageEvent = { readonly kind: 'llm'; readonly usage: LlmUsage } | { readonly kind: 'compute'; readonly usage: ComputeUsage };

const EVENT_ID = /^[A-Za-z0-9_.:-]{1,200}$/;
const PROVIDER = /^[a-z][a-z0-9-]{0,31}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

function belongs(executionId: string, subjectId: string, what: string): void {
  if (executionId === '') throw new PermanentError(`${what} without an execution id`);
  if (executionId !== subjectId) throw new PermanentError(`${what} of execution ${executionId} was published on the subject of execution ${subjectId}`);
}

function count(value: number, field: string, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new PermanentError(`${what}: ${field} is ${value}, not a count`);
}

/** What no retry can fix is a PermanentError: the message is dead-lettered with this reason. */
export function checkLlmUsage(usage: LlmUsage, subjectId: string): UsageEvent {
  const what = `LLM usage event ${JSON.stringify(usage.eventId)}`;
  belongs(usage.executionId, subjectId, what);
  if (!EVENT_ID.test(usage.eventId)) throw new PermanentError(`${what} has no valid event id`);
  if (!PROVIDER.test(usage.provider)) throw new PermanentError(`${what} names no provider (got ${JSON.stringify(usage.provider)})`);
  if (usage.model.trim() === '' || usage.model.length > 200) throw new PermanentError(`${what} names no model`);
  for (const field of ['inputTokens', 'outputTokens', 'cacheReadTokens', 'cacheWriteTokens', 'atMs'] as const) count(usage[field], field, what);
  return { kind: 'llm', usage };
}

export function checkComputeUsage(usage: ComputeUsage, subjectId: string): UsageEvent {
  const what = `compute usage event ${usage.seq} of ${usage.executionId}`;
  belongs(usage.executionId, subjectId, what);
  if (!Number.isInteger(usage.seq) || usage.seq < 1) throw new PermanentError(`${what}: seq starts at 1`);
  for (const field of ['cpuMsTotal', 'memoryMibMsTotal', 'wallMsTotal', 'atMs'] as const) count(usage[field], field, what);
  return { kind: 'compute', usage };
}

export function checkAccount(account: ExecutionAccount, subjectId: string): ExecutionAccount {
  const what = `the account of execution ${account.executionId}`;
  belongs(account.executionId, subjectId, what);
  if (account.ownerId === '') throw new PermanentError(`${what} names no owner`);
  if (account.llmKeySha256 !== '' && !SHA256_HEX.test(account.llmKeySha256)) throw new PermanentError(`${what}: llm_key_sha256 is not a lowercase hex SHA-256`);
  return account;
}
