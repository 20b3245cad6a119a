import { topics, type Bus, type Subscription } from '@paddock/bus';
import { ExecutionState, type BudgetExceeded } from '@paddock/proto';
import type { AccountStore } from './accountStore.js';
import { Batcher } from './batcher.js';
import type { Ledger } from './ledger.js';
import { checkAccount, checkComputeUsage, checkLlmUsage, type UsageEvent } from './usageEvents.js';

const FINAL_STATES: ReadonlySet<ExecutionState> = new Set([ExecutionState.EXECUTION_STATE_COMPLETED, ExecutionState.EXECUTION_STATE_FAILED, ExecutionState.EXECUTION_STATE_CANCELLED]);

export interface LedgerConsumersOptions {
  /** Usage messages handled at once per durable (across executions): what a batch can gather. */
  readonly concurrency: number;
  /** Events written in one transaction at most. */
  readonly batchMax: number;
  /** Told of alerts once the transaction that made them is committed. */
  readonly onAlerts: (alerts: readonly BudgetExceeded[]) => void;
}

export interface LedgerConsumers {
  stop(): Promise<void>;
}

/**
 * Billing's four durables: accounts (`billing-account`), final states (`billing-state`), and usage from
 * brokers (`billing-compute`) and from the metering proxy (`billing-llm`), whose events go to the ledger
 * in shared batches. A message that can never be stored is a PermanentError (dead-lettered); a database
 * that is away fails the handler, and the bus delivers the message again later.
 */
export async function startLedgerConsumers(bus: Bus, ledger: Ledger, accounts: AccountStore, opts: LedgerConsumersOptions): Promise<LedgerConsumers> {
  const batcher = new Batcher<UsageEvent>(async (events) => {
    const { alerts } = await ledger.ingest(events);
    if (alerts.length > 0) opts.onAlerts(alerts);
  }, opts.batchMax);
  const subs: Subscription[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(subs.map((s) => s.stop()));
    await batcher.idle();
  };
  try {
    subs.push(
      await bus.consume(topics.executionAccount, { durable: 'billing-account' }, async ({ id, message }) => {
        const alerts = await accounts.record(checkAccount(message, id));
        if (alerts.length > 0) opts.onAlerts(alerts);
      }),
    );
    subs.push(
      await bus.consume(topics.executionState, { durable: 'billing-state' }, async ({ message }) => {
        if (FINAL_STATES.has(message.state)) await accounts.end(message.executionId, message.finishedAtMs || message.atMs);
      }),
    );
    subs.push(
      await bus.consume(topics.usageCompute, { durable: 'billing-compute', concurrency: opts.concurrency }, ({ id, message }) =>
        batcher.add(checkComputeUsage(message, id)),
      ),
    );
    subs.push(
      await bus.consume(topics.usageLlm, { durable: 'billing-llm', concurrency: opts.concurrency }, ({ id, message }) => batcher.add(checkLlmUsage(message, id))),
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { stop };
}
