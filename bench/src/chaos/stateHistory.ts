import { connect, type ConnectionOptions } from 'nats';
import { streamOf, topics } from '@paddock/bus';
import { ExecutionState } from '@paddock/proto';

/** One state event of an execution, as the scheduler published it. */
export interface StateEvent {
  readonly version: number;
  /** Lowercase, as the REST API says it: queued, provisioning, executing, completed, failed, cancelled. */
  readonly state: string;
  readonly exitCode: number | null;
  readonly reason: string;
  readonly brokerId: string;
}

const FETCH_BATCH = 1000;
const FETCH_EXPIRES_MS = 2000;

/**
 * Every state event of every execution stored on the bus (`paddock.v1.execution.*.state`), read from the
 * beginning of its stream with an ordered consumer, by execution id in the order they were stored.
 * This is what another service replaying the stream would see.
 */
export async function readStateHistory(nats: ConnectionOptions): Promise<Map<string, StateEvent[]>> {
  const nc = await connect({ ...nats, timeout: 5000 });
  try {
    const js = nc.jetstream();
    const consumer = await js.consumers.get(streamOf(topics.executionState), { filterSubjects: topics.executionState.subject('*') });
    const history = new Map<string, StateEvent[]>();
    for (;;) {
      const batch = await consumer.fetch({ max_messages: FETCH_BATCH, expires: FETCH_EXPIRES_MS });
      let count = 0;
      let pending = 0;
      for await (const m of batch) {
        count++;
        pending = m.info.pending;
        const e = topics.executionState.type.decode(m.data);
        const events = history.get(e.executionId) ?? [];
        events.push({
          version: e.version,
          state: (ExecutionState[e.state] ?? 'unknown').replace(/^EXECUTION_STATE_/, '').toLowerCase(),
          exitCode: e.exitCode ?? null,
          reason: e.reason,
          brokerId: e.brokerId,
        });
        history.set(e.executionId, events);
        if (pending === 0) break;
      }
      if (count === 0 || pending === 0) return history;
    }
  } finally {
    await nc.close();
  }
}
