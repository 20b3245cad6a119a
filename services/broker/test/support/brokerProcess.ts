import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { topics, type Bus } from '@paddock/bus';
import type { LaunchReply, LaunchRequest } from '@paddock/proto';
import { brokerClientAs } from './brokerClient.js';

const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));

export interface BrokerProcess {
  launch(req: LaunchRequest): Promise<LaunchReply>;
  /** Sends the signal and resolves with how the process ended. */
  kill(signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** What it logged, to explain a failure. */
  log(): string;
}

/**
 * The broker as production runs it (dist/src/main.js) in a process of its own, so that a test can crash
 * it for real. It is found as the scheduler finds it: by its heartbeat on NATS, which names its address,
 * and called as the scheduler calls it, with the scheduler's certificate from the plane in env's PADDOCK_HOME.
 */
export async function startBrokerProcess(env: Record<string, string>, bus: Bus, brokerId: string): Promise<BrokerProcess> {
  let address!: (a: string) => void;
  const heard = new Promise<string>((resolve) => (address = resolve));
  const sub = bus.subscribe(topics.brokerHeartbeat, brokerId, (d) => address(d.message.grpcAddress));
  const child = spawn(process.execPath, [MAIN], { env: { ...process.env, ...env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`broker did not start:\n${log}`)), 20_000)));
  const exitedEarly = ended.then((e) => Promise.reject(new Error(`broker exited (${e.code ?? e.signal}) before it was ready:\n${log}`)));
  exitedEarly.catch(() => {});
  let grpcAddress: string;
  try {
    grpcAddress = await Promise.race([heard, timeout, exitedEarly]);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  } finally {
    clearTimeout(timer);
    await sub.stop();
  }
  const client = await brokerClientAs('scheduler', grpcAddress, env);
  return {
    launch: (req) => new Promise((resolve, reject) => client.launch(req, (err, reply) => (err ? reject(err) : resolve(reply)))),
    kill: async (signal) => {
      client.close();
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return ended;
    },
    log: () => log,
  };
}
