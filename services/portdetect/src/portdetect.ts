import { readFile } from 'node:fs/promises';
import Docker from 'dockerode';
import { Bus, topics, type BusObserver } from '@paddock/bus';
import { waitFor, type Startup } from '@paddock/service';
import type { Logger } from '@paddock/telemetry';
import { BusSink } from './busSink.js';
import type { PortdetectConfig } from './config.js';
import { DockerInstances } from './dockerInstances.js';
import { PortDetector } from './portDetector.js';

export interface StartedPortdetect {
  readonly detector: PortDetector;
  stop(): Promise<void>;
}

const HEARTBEAT_MS = 1_000;

/** portdetect: the instances of one Docker engine, their listening ports, and the events that say so. */
export async function startPortdetect(
  config: PortdetectConfig,
  log: Logger,
  opts: { startup?: Startup; observer?: BusObserver } = {},
): Promise<StartedPortdetect> {
  await warnOnSharedConnectionTables(config.procDir, log);
  const bus = await waitFor(opts.startup, 'NATS', () =>
    Bus.connect({ ...config.bus, url: config.natsUrl, name: 'paddock-portdetect', log, ...(opts.observer ? { observer: opts.observer } : {}) }),
  );
  const sink = new BusSink(bus, log);
  const detector = new PortDetector(sink, log, { procDir: config.procDir, intervalMs: config.intervalMs, verifyMs: config.verifyMs, busyMs: config.busyMs });
  const docker = new Docker({ socketPath: config.dockerSocket });
  const instances = new DockerInstances(
    docker,
    {
      up: (instance) => void detector.add(instance),
      down: (id) => void detector.remove(id),
    },
    log,
  );
  await waitFor(opts.startup, 'Docker', () => instances.start());
  detector.start();
  const beat = () => bus.publishCore(topics.serviceHeartbeat, 'portdetect', { service: 'portdetect', instanceId: String(process.pid), atMs: Date.now() });
  beat();
  const heartbeat = setInterval(beat, HEARTBEAT_MS);
  log.info({ instances: detector.instanceCount, intervalMs: config.intervalMs }, 'portdetect ready');

  let stopped: Promise<void> | undefined;
  return {
    detector,
    stop: () =>
      (stopped ??= (async () => {
        clearInterval(heartbeat);
        instances.stop();
        sink.stop();
        await detector.stop();
        await bus.drain();
      })()),
  };
}

/**
 * Without per-namespace connection tables (net.ipv4.tcp_child_ehash_entries, Linux 6.1+), every full read
 * of an instance's socket table walks the host's whole table: it works, but costs ~1.7 ms instead of ~20 µs.
 */
async function warnOnSharedConnectionTables(procDir: string, log: Logger): Promise<void> {
  const value = await readFile(`${procDir}/sys/net/ipv4/tcp_child_ehash_entries`, 'utf8').catch(() => undefined);
  if (value !== undefined && Number(value.trim()) === 0) {
    log.warn(
      'net.ipv4.tcp_child_ehash_entries is 0: each instance shares the host-sized TCP table, and reading its sockets costs ~100x more; ' +
        '`sysctl -w net.ipv4.tcp_child_ehash_entries=1024` (scripts/setup.sh sets it) applies to instances started afterwards',
    );
  }
}
