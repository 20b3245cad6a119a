import { ExecutionState } from '@paddock/proto';

export type JobState = 'queued' | 'provisioning' | 'executing' | 'completed' | 'failed' | 'cancelled';

export const FINAL: readonly JobState[] = ['completed', 'failed', 'cancelled'];
export const ACTIVE: readonly JobState[] = ['provisioning', 'executing'];

export function isFinal(state: JobState): boolean {
  return FINAL.includes(state);
}

const toProto: Record<JobState, ExecutionState> = {
  queued: ExecutionState.EXECUTION_STATE_QUEUED,
  provisioning: ExecutionState.EXECUTION_STATE_PROVISIONING,
  executing: ExecutionState.EXECUTION_STATE_EXECUTING,
  completed: ExecutionState.EXECUTION_STATE_COMPLETED,
  failed: ExecutionState.EXECUTION_STATE_FAILED,
  cancelled: ExecutionState.EXECUTION_STATE_CANCELLED,
};

export function protoState(state: JobState): ExecutionState {
  return toProto[state];
}

/** The transitions the lifecycle allows: `from` states for each target. */
export const ALLOWED_FROM: Record<JobState, readonly JobState[]> = {
  queued: [],
  provisioning: ['queued'],
  executing: ['provisioning'],
  completed: ['provisioning', 'executing'],
  failed: ['queued', 'provisioning', 'executing'],
  cancelled: ['queued', 'provisioning', 'executing'],
};
