import {
  BrokerHeartbeat,
  CancelRequested,
  ExecutionRequested,
  ExecutionStateChanged,
  InstanceExited,
  InstanceStarted,
  OutputChunk,
  ServiceHeartbeat,
  type MessageFns,
} from '@paddock/proto';

/**
 * Every subject Paddock uses, and the one message type each carries. Subjects are versioned and lowercase,
 * with the id in a fixed position so that `*` in its place filters across ids. No subject string is written
 * anywhere else.
 */
export interface Topic<T> {
  readonly name: string;
  readonly type: MessageFns<T>;
  /** The JetStream stream that stores it, or null for core NATS only. */
  readonly stream: StreamName | null;
  subject(id: string): string;
}

export type StreamName = 'PADDOCK_EXECUTIONS' | 'PADDOCK_INSTANCES' | 'PADDOCK_OUTPUT';

/** The stream a stored topic lives in; a core-NATS topic has none, which is a programming error here. */
export function streamOf(topic: Topic<unknown>): StreamName {
  if (!topic.stream) throw new Error(`${topic.name} is not stored in a stream`);
  return topic.stream;
}

const ID = /^[A-Za-z0-9_-]+$/;

function topic<T>(
  name: string,
  type: MessageFns<T>,
  stream: StreamName | null,
  build: (id: string) => string,
): Topic<T> {
  return {
    name,
    type,
    stream,
    subject(id: string) {
      if (id !== '*' && !ID.test(id)) throw new Error(`invalid subject token "${id}" for ${name}`);
      return build(id);
    },
  };
}

export const topics = {
  executionRequested: topic('execution.requested', ExecutionRequested, 'PADDOCK_EXECUTIONS', (id) => `paddock.v1.execution.${id}.requested`),
  executionCancel: topic('execution.cancel', CancelRequested, 'PADDOCK_EXECUTIONS', (id) => `paddock.v1.execution.${id}.cancel`),
  executionState: topic('execution.state', ExecutionStateChanged, 'PADDOCK_EXECUTIONS', (id) => `paddock.v1.execution.${id}.state`),
  instanceStarted: topic('instance.started', InstanceStarted, 'PADDOCK_INSTANCES', (id) => `paddock.v1.instance.${id}.started`),
  instanceExited: topic('instance.exited', InstanceExited, 'PADDOCK_INSTANCES', (id) => `paddock.v1.instance.${id}.exited`),
  output: topic('output', OutputChunk, 'PADDOCK_OUTPUT', (id) => `paddock.v1.output.${id}`),
  brokerHeartbeat: topic('broker.heartbeat', BrokerHeartbeat, null, (id) => `paddock.v1.broker.${id}.heartbeat`),
  serviceHeartbeat: topic('service.heartbeat', ServiceHeartbeat, null, (id) => `paddock.v1.service.${id}.heartbeat`),
} as const;

/** The id token of a subject built by `topic.subject(id)`: always the fourth token. */
export function subjectId(subject: string): string {
  return subject.split('.')[3] ?? '';
}

export interface StreamSpec {
  readonly name: StreamName;
  readonly subjects: readonly string[];
  readonly maxAgeMs: number;
}

export const DAY_MS = 24 * 60 * 60 * 1000;

export const streams: readonly StreamSpec[] = [
  { name: 'PADDOCK_EXECUTIONS', subjects: ['paddock.v1.execution.>'], maxAgeMs: 30 * DAY_MS },
  { name: 'PADDOCK_INSTANCES', subjects: ['paddock.v1.instance.>'], maxAgeMs: 30 * DAY_MS },
  { name: 'PADDOCK_OUTPUT', subjects: ['paddock.v1.output.>'], maxAgeMs: 30 * DAY_MS },
];
