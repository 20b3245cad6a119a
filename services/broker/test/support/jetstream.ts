import { topics, type Bus, type Topic } from '@paddock/bus';
import type { InstanceExited, InstanceStarted, OutputChunk } from '@paddock/proto';

/**
 * Reads the messages stored for one id of a topic, from the first, as another service replaying the
 * stream would, until `until` says stop (inclusive) or the time runs out.
 */
export async function readStored<T>(
  bus: Bus,
  topic: Topic<T>,
  id: string,
  until: (message: T, all: T[]) => boolean,
  timeoutMs = 20_000,
): Promise<T[]> {
  if (!topic.stream) throw new Error(`${topic.name} is not stored`);
  const stream = topic.stream;
  // A single filter subject: nats-server before 2.10 knows no lists of them.
  const messages = await within(
    timeoutMs,
    bus.js.consumers.get(stream, { filterSubjects: topic.subject(id) }).then((c) => c.consume()),
    `${topic.name} ${id}: no consumer`,
  );
  const got: T[] = [];
  let done = false;
  const timer = setTimeout(() => messages.stop(), timeoutMs);
  try {
    for await (const m of messages) {
      const message = topic.type.decode(m.data);
      got.push(message);
      if (until(message, got)) {
        done = true;
        break;
      }
    }
  } finally {
    clearTimeout(timer);
    messages.stop();
  }
  if (!done) throw new Error(`${topic.name} ${id}: gave up after ${timeoutMs} ms with ${got.length} messages`);
  return got;
}

/** The output of an execution up to and including the chunk marked eof. */
export function outputOf(bus: Bus, executionId: string, timeoutMs?: number): Promise<OutputChunk[]> {
  return readStored(bus, topics.output, executionId, (c) => c.eof, timeoutMs);
}

export async function exitedOf(bus: Bus, executionId: string, timeoutMs?: number): Promise<InstanceExited> {
  const [exited] = await readStored(bus, topics.instanceExited, executionId, () => true, timeoutMs);
  return exited!;
}

export async function startedOf(bus: Bus, executionId: string, timeoutMs?: number): Promise<InstanceStarted> {
  const [started] = await readStored(bus, topics.instanceStarted, executionId, () => true, timeoutMs);
  return started!;
}

/** Waits until the output holds `text` (an execution known to be producing output). */
export async function outputContains(bus: Bus, executionId: string, text: string, timeoutMs?: number): Promise<void> {
  await readStored(bus, topics.output, executionId, (_c, all) => textOf(all).includes(text), timeoutMs);
}

/** How many messages the stream holds on the subject of this id. */
export async function storedCount<T>(bus: Bus, topic: Topic<T>, id: string): Promise<number> {
  if (!topic.stream) throw new Error(`${topic.name} is not stored`);
  const subject = topic.subject(id);
  const info = await bus.jsm.streams.info(topic.stream, { subjects_filter: subject });
  return info.state.subjects?.[subject] ?? 0;
}

/** All the bytes of the chunks of one stream (stdout, stderr or system), or of all when none is given. */
export function textOf(chunks: readonly OutputChunk[], stream?: number): string {
  return Buffer.concat(chunks.filter((c) => stream === undefined || c.stream === stream).map((c) => Buffer.from(c.data))).toString('utf8');
}

function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
