import { PassThrough, type Readable } from 'node:stream';
import type { ConsumerMessages } from 'nats';
import { streamOf, topics, type Bus, type Subscription } from '@paddock/bus';
import { ExecutionState, OutputChunk } from '@paddock/proto';

const FINAL = new Set([ExecutionState.EXECUTION_STATE_COMPLETED, ExecutionState.EXECUTION_STATE_FAILED, ExecutionState.EXECUTION_STATE_CANCELLED]);

/**
 * An execution's output as a byte stream, read from its JetStream subject: everything so far, or
 * (`follow`) everything and then what comes, until the output's end mark, or until the execution is final
 * and all it wrote has been read (an execution cancelled in the queue writes nothing).
 */
export async function readOutput(bus: Bus, executionId: string, opts: { follow: boolean; isFinal: () => Promise<boolean> }): Promise<Readable> {
  const subject = topics.output.subject(executionId);
  const out = new PassThrough();
  const lastSeq = async (): Promise<number> => (await bus.lastStored(topics.output, executionId))?.seq ?? 0;

  let endAt = opts.follow ? Infinity : await lastSeq();
  let delivered = 0;
  let closed = false;
  // Set once each is open; `finish` may run before either is.
  const open: { messages?: ConsumerMessages; stateSub?: Subscription } = {};
  const finish = () => {
    if (closed) return;
    closed = true;
    open.stateSub?.stop().catch(() => {});
    open.messages?.stop();
    out.end();
  };
  // Once final, nothing more will be written: read up to the last chunk stored, then end.
  const onFinal = async () => {
    endAt = await lastSeq();
    if (delivered >= endAt) finish();
  };

  open.stateSub = opts.follow
    ? bus.subscribe(topics.executionState, executionId, ({ message }) => {
        if (FINAL.has(message.state)) void onFinal().catch(() => finish());
      })
    : undefined;
  if (!opts.follow && endAt === 0) {
    finish();
    return out;
  }
  // nats-server 2.9 (Debian's) takes one filter subject per consumer: a string, not an array.
  const consumer = await bus.js.consumers.get(streamOf(topics.output), { filterSubjects: subject });
  const iterator = await consumer.consume();
  open.messages = iterator;
  out.on('close', finish);
  if (opts.follow && (await opts.isFinal())) await onFinal();

  void (async () => {
    try {
      for await (const m of iterator) {
        delivered = m.seq;
        const chunk = OutputChunk.decode(m.data);
        if (chunk.data.length > 0 && !out.write(Buffer.from(chunk.data))) {
          await new Promise((r) => out.once('drain', r));
        }
        if (chunk.eof || delivered >= endAt) break;
      }
    } finally {
      finish();
    }
  })();
  return out;
}
