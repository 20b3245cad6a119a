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

export type StreamName = 'PADDOCK_EXECUTIONS' | 'PADDOCK_INSTANCES' | 'PADDOCK_OUTPUT' | 'PADDOCK_DEADLETTER';

/** The stream a stored topic lives in; a core-NATS topic has none, which is a programming error here. */
export function streamOf(topic: Topic<unknown>): StreamName {
  if (!topic.stream) throw new Error(`${topic.name} is not stored in a stream`);
  return topic.stream;
}

const ID = /^[A-Za-z0-9_-]+$/;

function token(id: string, of: string): string {
  if (id !== '*' && !ID.test(id)) throw new Error(`invalid subject token "${id}" for ${of}`);
  return id;
}

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
      return build(token(id, name));
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

/**
 * Where a consumer's messages go when they cannot be handled: `paddock.v1.deadletter.<consumer>`, stored in
 * PADDOCK_DEADLETTER. A dead letter carries the original payload unchanged (whatever its topic's type) and
 * says where it came from and why in NATS headers (see deadLetter.ts), so it needs no message type of its
 * own and can be put back on its original subject as is.
 */
export const deadLetters = {
  stream: 'PADDOCK_DEADLETTER' as const satisfies StreamName,
  subject: (consumer: string): string => `paddock.v1.deadletter.${token(consumer, 'deadletter')}`,
};

/** The subjects each stream stores; its limits come from the bus's settings (busConfig.ts). */
export interface StreamSpec {
  readonly name: StreamName;
  readonly subjects: readonly string[];
}

export const DAY_MS = 24 * 60 * 60 * 1000;

export const streams: readonly StreamSpec[] = [
  { name: 'PADDOCK_EXECUTIONS', subjects: ['paddock.v1.execution.>'] },
  { name: 'PADDOCK_INSTANCES', subjects: ['paddock.v1.instance.>'] },
  { name: 'PADDOCK_OUTPUT', subjects: ['paddock.v1.output.>'] },
  { name: 'PADDOCK_DEADLETTER', subjects: ['paddock.v1.deadletter.>'] },
];
