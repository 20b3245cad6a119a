import { topics, type Bus, type Subscription } from '@paddock/bus';
import { ExecutionState } from '@paddock/proto';
import type { ExecutionStore } from './executionStore.js';
import type { ApiState } from './schemas.js';

const API_STATE: Partial<Record<ExecutionState, ApiState>> = {
  [ExecutionState.EXECUTION_STATE_QUEUED]: 'queued',
  [ExecutionState.EXECUTION_STATE_PROVISIONING]: 'provisioning',
  [ExecutionState.EXECUTION_STATE_EXECUTING]: 'executing',
  [ExecutionState.EXECUTION_STATE_COMPLETED]: 'completed',
  [ExecutionState.EXECUTION_STATE_FAILED]: 'failed',
  [ExecutionState.EXECUTION_STATE_CANCELLED]: 'cancelled',
};

/** Keeps the executions table in step with the scheduler's state events. */
export function projectStates(bus: Bus, store: ExecutionStore): Promise<Subscription> {
  return bus.consume(topics.executionState, { durable: 'gateway-state', concurrency: 64 }, async ({ id, message }) => {
    const state = API_STATE[message.state];
    if (!state) return;
    await store.applyState(id, {
      state,
      version: message.version,
      exitCode: message.exitCode ?? null,
      error: message.reason || null,
      startedAtMs: message.startedAtMs,
      finishedAtMs: message.finishedAtMs,
      brokerId: message.brokerId,
    });
  });
}
