import { deadLetters, SERVICES, streams, topics, type ServiceName, type StreamName, type Topic } from './subjects.js';

/** A NATS user: one per service, and `admin` for operators and tests, which may do anything. */
export const NATS_USERS = [...SERVICES, 'admin'] as const;
export type NatsUser = (typeof NATS_USERS)[number];

/** What nats-server lets one user publish and subscribe to: nothing but the subjects listed. */
export interface NatsPermissions {
  readonly publish: { readonly allow: readonly string[] };
  readonly subscribe: { readonly allow: readonly string[] };
}

/** A durable consumer of the registry: the service that runs it, on which topic, in which stream. */
export interface DurableConsumer {
  readonly service: ServiceName;
  readonly durable: string;
  readonly topic: Topic<unknown>;
  readonly stream: StreamName;
}

const JS_API = '$JS.API';

export function isNatsUser(name: string): name is NatsUser {
  return (NATS_USERS as readonly string[]).includes(name);
}

/**
 * The prefix of a user's reply subjects (nats.js `inboxPrefix`). Replies (JetStream's answers, the
 * messages a pull consumer hands out) go to `<prefix>.<random>`; each user may subscribe to its own prefix
 * only, so that no service reads another's replies.
 */
export function inboxPrefix(user: NatsUser): string {
  return `_INBOX_${user}`;
}

function streamOfOrFail(topic: Topic<unknown>, what: string): StreamName {
  if (!topic.stream) throw new Error(`subject registry: ${topic.name} has ${what} but is not stored in a stream`);
  return topic.stream;
}

const registry: readonly Topic<unknown>[] = Object.values(topics);

/** Every durable consumer the registry declares. */
export function durableConsumers(topicList: readonly Topic<unknown>[] = registry): DurableConsumer[] {
  return topicList.flatMap((topic) =>
    Object.entries(topic.owners.consumers).flatMap(([service, durables]) =>
      (durables ?? []).map((durable) => ({ service: service as ServiceName, durable, topic, stream: streamOfOrFail(topic, 'durable consumers') })),
    ),
  );
}

/**
 * Refuses a registry whose permissions would not mean what it says: a durable claimed twice (two services
 * would share its messages and dead letters), a durable name that is not one subject token, a stored
 * relation on a core-NATS topic, and a stream one service follows while another keeps a durable in it.
 * The last is a limit of NATS permissions, which match whole tokens: a follower's ordered consumers get
 * random names, so it may pull from any consumer of that stream, durables included.
 */
export function checkOwnership(topicList: readonly Topic<unknown>[]): void {
  const seen = new Map<string, string>();
  for (const c of durableConsumers(topicList)) {
    const where = `${c.service} on ${c.topic.name}`;
    if (!/^[A-Za-z0-9_-]+$/.test(c.durable)) throw new Error(`subject registry: durable "${c.durable}" of ${where} is not one subject token`);
    const other = seen.get(c.durable);
    if (other) throw new Error(`subject registry: durable "${c.durable}" is declared twice (${other}; ${where})`);
    seen.set(c.durable, where);
  }
  for (const topic of topicList) {
    if (topic.owners.readers.length > 0) streamOfOrFail(topic, 'readers');
    if (topic.owners.followers.length > 0) {
      const stream = streamOfOrFail(topic, 'followers');
      for (const c of durableConsumers(topicList)) {
        const stranger = topic.owners.followers.find((f) => f !== c.service);
        if (c.stream === stream && stranger) {
          throw new Error(
            `subject registry: ${stranger} follows ${topic.name} in ${stream}, where ${c.service} keeps durable "${c.durable}": ` +
              'a follower may pull from every consumer of its stream, so that durable would not be private',
          );
        }
      }
    }
  }
}

checkOwnership(registry);

/** Permission to make and keep a stream as Bus.connect does, for every stream: every service ensures them all. */
function streamApi(): string[] {
  return [
    `${JS_API}.INFO`,
    ...streams.flatMap(({ name }) => [`${JS_API}.STREAM.INFO.${name}`, `${JS_API}.STREAM.CREATE.${name}`, `${JS_API}.STREAM.UPDATE.${name}`]),
  ];
}

/**
 * The NATS permissions of `user`, derived from the subject registry (`topics[*].owners`): what it publishes,
 * listens to, consumes (with its dead letters and the MAX_DELIVERIES advisory), reads and follows, the
 * JetStream API calls these need on the streams and consumers concerned, and its own inbox. `admin` may do
 * anything.
 */
export function natsPermissions(user: NatsUser): NatsPermissions {
  if (!isNatsUser(user)) throw new Error(`unknown NATS user "${String(user)}": expected one of ${NATS_USERS.join(', ')}`);
  if (user === 'admin') return { publish: { allow: ['>'] }, subscribe: { allow: ['>'] } };
  const publish = new Set<string>(streamApi());
  const subscribe = new Set<string>([`${inboxPrefix(user)}.>`]);
  for (const topic of registry) {
    const { owners } = topic;
    if (owners.publishers.includes(user)) publish.add(topic.subject(owners.publishOwnIdOnly ? user : '*'));
    if (owners.subscribers.includes(user)) subscribe.add(topic.subject('*'));
    if (owners.readers.includes(user)) publish.add(`${JS_API}.STREAM.MSG.GET.${streamOfOrFail(topic, 'readers')}`);
    if (owners.followers.includes(user)) {
      const stream = streamOfOrFail(topic, 'followers');
      // An ordered consumer is named at random, but its filter must be this topic's subject.
      publish.add(`${JS_API}.CONSUMER.CREATE.${stream}.*.${topic.subject('*')}`);
      for (const call of ['INFO', 'MSG.NEXT', 'DELETE']) publish.add(`${JS_API}.CONSUMER.${call}.${stream}.*`);
    }
  }
  for (const { service, durable, topic, stream } of durableConsumers()) {
    if (service !== user) continue;
    // Made (or updated) with this filter only: the same durable with another filter would read other topics.
    publish.add(`${JS_API}.CONSUMER.CREATE.${stream}.${durable}.${topic.subject('*')}`);
    publish.add(`${JS_API}.CONSUMER.INFO.${stream}.${durable}`);
    publish.add(`${JS_API}.CONSUMER.MSG.NEXT.${stream}.${durable}`);
    // Acks, naks, terms and progress notes go to the reply subject of each message the durable hands out.
    publish.add(`$JS.ACK.${stream}.${durable}.>`);
    publish.add(deadLetters.subject(durable));
    // A message that ran out of deliveries is read back from its stream to be dead-lettered.
    publish.add(`${JS_API}.STREAM.MSG.GET.${stream}`);
    subscribe.add(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.${durable}`);
  }
  return { publish: { allow: [...publish] }, subscribe: { allow: [...subscribe] } };
}
