import {
  BrokerHeartbeat,
  BudgetExceeded,
  CancelRequested,
  ComputeUsage,
  ExecutionAccount,
  ExecutionRequested,
  ExecutionStateChanged,
  InstanceExited,
  InstanceStarted,
  LlmUsage,
  OutputChunk,
  PortChanged,
  PortVisibility,
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
  /** Which services may do what with it: each service's NATS permissions come from this (natsPermissions.ts). */
  readonly owners: TopicOwners;
  subject(id: string): string;
}

/**
 * Paddock's services, by the name each connects to NATS as (its NATS user, its inbox prefix, its
 * heartbeat's id).
 */
export const SERVICES = ['gateway', 'scheduler', 'broker', 'portdetect', 'xds', 'billing'] as const;
export type ServiceName = (typeof SERVICES)[number];

/**
 * What services do with a topic. Nothing else is allowed: a service that publishes, listens to or consumes
 * a topic that does not name it here is refused by nats-server.
 */
export interface TopicOwners {
  /** Services that publish it. */
  readonly publishers: readonly ServiceName[];
  /** The id of each message is its publisher's own name (a service heartbeat): each publishes only its own. */
  readonly publishOwnIdOnly?: boolean;
  /** Services that listen to it live, on core NATS (`bus.subscribe`), for any id. */
  readonly subscribers: readonly ServiceName[];
  /** Durable consumers (`bus.consume`) by service; a durable's name is also its dead-letter subject's. */
  readonly consumers: Readonly<Partial<Record<ServiceName, readonly string[]>>>;
  /** Services that read single stored messages of its stream (`bus.lastStored`). */
  readonly readers: readonly ServiceName[];
  /** Services that follow one id's messages through an ordered (ephemeral) consumer of its stream. */
  readonly followers: readonly ServiceName[];
}

export type StreamName =
  | 'PADDOCK_EXECUTIONS'
  | 'PADDOCK_INSTANCES'
  | 'PADDOCK_OUTPUT'
  | 'PADDOCK_PORTS'
  | 'PADDOCK_USAGE'
  | 'PADDOCK_BUDGETS'
  | 'PADDOCK_DEADLETTER';

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

const NOBODY: TopicOwners = { publishers: [], subscribers: [], consumers: {}, readers: [], followers: [] };

function topic<T>(
  name: string,
  type: MessageFns<T>,
  stream: StreamName | null,
  build: (id: string) => string,
  owners: Partial<TopicOwners>,
): Topic<T> {
  return {
    name,
    type,
    stream,
    owners: { ...NOBODY, ...owners },
    subject(id: string) {
      return build(token(id, name));
    },
  };
}

export const topics = {
  executionRequested: topic('execution.requested', ExecutionRequested, 'PADDOCK_EXECUTIONS', (id) => `paddock.v1.execution.${id}.requested`, {
    publishers: ['gateway'],
    consumers: { scheduler: ['scheduler-requested'] },
  }),
  executionCancel: topic('execution.cancel', CancelRequested, 'PADDOCK_EXECUTIONS', (id) => `paddock.v1.execution.${id}.cancel`, {
    publishers: ['gateway'],
    consumers: { scheduler: ['scheduler-cancel'] },
  }),
  executionState: topic('execution.state', ExecutionStateChanged, 'PADDOCK_EXECUTIONS', (id) => `paddock.v1.execution.${id}.state`, {
    publishers: ['scheduler'],
    // The gateway keeps its executions table from the durable, and ends a followed log when the state is final.
    subscribers: ['gateway'],
    // Billing ends a run's LLM access when its execution is final.
    consumers: { gateway: ['gateway-state'], billing: ['billing-state'] },
  }),
  executionAccount: topic('execution.account', ExecutionAccount, 'PADDOCK_EXECUTIONS', (id) => `paddock.v1.execution.${id}.account`, {
    publishers: ['gateway'],
    consumers: { billing: ['billing-account'] },
  }),
  instanceStarted: topic('instance.started', InstanceStarted, 'PADDOCK_INSTANCES', (id) => `paddock.v1.instance.${id}.started`, {
    publishers: ['broker'],
    consumers: { scheduler: ['scheduler-instance-started'] },
  }),
  instanceExited: topic('instance.exited', InstanceExited, 'PADDOCK_INSTANCES', (id) => `paddock.v1.instance.${id}.exited`, {
    publishers: ['broker'],
    consumers: { scheduler: ['scheduler-instance-exited'] },
    // When a broker lost an instance, the scheduler looks up whether its exit was published.
    readers: ['scheduler'],
  }),
  output: topic('output', OutputChunk, 'PADDOCK_OUTPUT', (id) => `paddock.v1.output.${id}`, {
    publishers: ['broker'],
    // The broker resumes an adopted instance's output after the last chunk stored; the gateway serves logs.
    readers: ['broker', 'gateway'],
    followers: ['gateway'],
  }),
  brokerHeartbeat: topic('broker.heartbeat', BrokerHeartbeat, null, (id) => `paddock.v1.broker.${id}.heartbeat`, {
    publishers: ['broker'],
    subscribers: ['gateway', 'scheduler', 'xds'],
  }),
  portOpened: topic('port.opened', PortChanged, 'PADDOCK_PORTS', (id) => `paddock.v1.port.${id}.opened`, {
    publishers: ['portdetect'],
    // Each event carries the instance's whole state: readers take the last one, listeners follow live.
    readers: ['portdetect', 'gateway', 'xds'],
    subscribers: ['gateway', 'xds'],
  }),
  portClosed: topic('port.closed', PortChanged, 'PADDOCK_PORTS', (id) => `paddock.v1.port.${id}.closed`, {
    publishers: ['portdetect'],
    readers: ['portdetect', 'gateway', 'xds'],
    subscribers: ['gateway', 'xds'],
  }),
  portVisibility: topic('port.visibility', PortVisibility, 'PADDOCK_PORTS', (id) => `paddock.v1.port.${id}.visibility`, {
    publishers: ['gateway'],
    readers: ['gateway', 'xds'],
    // The gateway's port event stream shows visibility changes too.
    subscribers: ['gateway', 'xds'],
  }),
  usageCompute: topic('usage.compute', ComputeUsage, 'PADDOCK_USAGE', (id) => `paddock.v1.usage.${id}.compute`, {
    publishers: ['broker'],
    consumers: { billing: ['billing-compute'] },
    // A broker that adopts a running instance continues its totals from the last event stored.
    readers: ['broker'],
  }),
  usageLlm: topic('usage.llm', LlmUsage, 'PADDOCK_USAGE', (id) => `paddock.v1.usage.${id}.llm`, {
    publishers: ['billing'],
    consumers: { billing: ['billing-llm'] },
  }),
  budgetExceeded: topic('budget.exceeded', BudgetExceeded, 'PADDOCK_BUDGETS', (id) => `paddock.v1.budget.${id}.exceeded`, {
    publishers: ['billing'],
    // The gateway holds or refuses new work under a hard budget that is spent.
    consumers: { gateway: ['gateway-budgets'] },
  }),
  serviceHeartbeat: topic('service.heartbeat', ServiceHeartbeat, null, (id) => `paddock.v1.service.${id}.heartbeat`, {
    publishers: [...SERVICES],
    publishOwnIdOnly: true,
    subscribers: ['gateway'],
  }),
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
  { name: 'PADDOCK_PORTS', subjects: ['paddock.v1.port.>'] },
  { name: 'PADDOCK_USAGE', subjects: ['paddock.v1.usage.>'] },
  { name: 'PADDOCK_BUDGETS', subjects: ['paddock.v1.budget.>'] },
  { name: 'PADDOCK_DEADLETTER', subjects: ['paddock.v1.deadletter.>'] },
];
