import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Bus, topics } from '@paddock/bus';
import type { PortChanged } from '@paddock/proto';
import { createLogger } from '@paddock/telemetry';
import { startNatsServer, type NatsServer } from '@paddock/testkit';
import { portdetectConfig } from '../src/config.js';
import { startPortdetect, type StartedPortdetect } from '../src/portdetect.js';
import { listenIn, startInstance, stopListening, waitFor } from './support.js';

const log = createLogger('portdetect-test', 'warn');
let nats: NatsServer;
let bus: Bus;

before(async () => {
  nats = await startNatsServer();
  bus = await Bus.connect({ url: nats.url, name: 'portdetect-test-reader', log });
});
after(async () => {
  await bus.drain();
  await nats.stop();
});

function start(): Promise<StartedPortdetect> {
  return startPortdetect(portdetectConfig({ NATS_URL: nats.url, PADDOCK_PORTDETECT_INTERVAL_MS: '50' }), log);
}

/** The instance's last stored event, whichever of .opened and .closed it was. */
async function last(id: string): Promise<PortChanged | null> {
  const [opened, closed] = await Promise.all([bus.lastStored(topics.portOpened, id), bus.lastStored(topics.portClosed, id)]);
  const found = [opened, closed].filter((s) => s !== null).sort((a, b) => b.seq - a.seq)[0];
  return found?.message ?? null;
}

/** The stream sequence of the instance's last event (other instances on this engine publish too). */
async function lastSeqOf(id: string): Promise<number> {
  const [opened, closed] = await Promise.all([bus.lastStored(topics.portOpened, id), bus.lastStored(topics.portClosed, id)]);
  return Math.max(opened?.seq ?? 0, closed?.seq ?? 0);
}

test('the service follows the engine: a port opened in a new instance is on the bus, a restart repeats nothing, the end closes every port', async (t) => {
  let service = await start();
  const instance = await startInstance();
  t.after(() => service.stop());
  try {
    await listenIn(instance.container, '127.0.0.1', 8000);
    const opened = await waitFor('the opened event on the bus', async () => {
      const e = await last(instance.id);
      return e?.port === 8000 ? e : undefined;
    });
    assert.deepEqual(opened.open.map((p) => [p.port, p.address]), [[8000, '127.0.0.1']]);
    assert.equal(opened.brokerId, 'portdetect-test');

    // Restarted with nothing changed: nothing published again.
    await service.stop();
    const before = await lastSeqOf(instance.id);
    service = await start();
    await waitFor('the instance tracked again', () => (service.detector.ports(instance.id).length === 1 ? true : undefined));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await lastSeqOf(instance.id), before, 'a restart published nothing');

    // Changed while it was down: published once, after the last sequence.
    await service.stop();
    await stopListening(instance.container, 8000);
    service = await start();
    const closed = await waitFor('the closed event', async () => {
      const e = await last(instance.id);
      return e && e.seq > opened.seq ? e : undefined;
    });
    assert.deepEqual([closed.port, closed.seq, closed.open.length, closed.instanceEnded], [8000, opened.seq + 1, 0, false]);

    await listenIn(instance.container, '::', 9000);
    await waitFor('9000 opened', async () => ((await last(instance.id))?.port === 9000 ? true : undefined));
  } finally {
    await instance.remove();
  }
  // Removing a container takes the engine seconds when the machine is busy (the whole suite runs at once).
  const ended = await waitFor(
    'the instance-ended close',
    async () => {
      const e = await last(instance.id);
      return e?.instanceEnded ? e : undefined;
    },
    20_000,
  );
  assert.deepEqual([ended.port, ended.open.length], [9000, 0]);
  await service.stop();
});
