import { connect as connectTcp } from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket, { createWebSocketStream } from 'ws';
import { HttpConnection, type HttpAnswer } from '../httpConnection.js';
import { ms, sampled, type BenchContext, type Figure, type Section } from '../section.js';
import { containerOf, firstOk, servedFile, startServer } from './ports.js';

/** The instance the server runs in: a service with no network at all (the relay reaches it anyway). */
const SERVICE = { kind: 'shell', command: 'echo service-ready', service: true, network: 'none' } as const;
const PORT = 8300;
const SMALL = 'small.txt';
const SMALL_BYTES = 512;
const LARGE = 'large.bin';
/** Small GETs per --n, and uncounted ones first: they are cheap, and a p95 wants more than 20. */
const GETS_PER_N = 5;
const WARMUP_GETS = 5;
const OPEN_MS = 10_000;

/** A TCP connection to the gateway's ingress. */
function ingressStream(port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket = connectTcp({ host: '127.0.0.1', port, noDelay: true });
    const timer = setTimeout(() => socket.destroy(new Error(`the ingress on port ${port} did not accept within ${OPEN_MS} ms`)), OPEN_MS);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** One WebSocket tunnel (the gateway's WS-TCP bridge) to `port` of instance `id`, as a byte stream. */
function tunnelStream(bridgePort: number, id: string, port: number, token: string): Promise<Duplex> {
  const path = `/api/v1/instances/${id}/tunnel?port=${port}`;
  const ws = new WebSocket(`ws://127.0.0.1:${bridgePort}${path}`, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false, handshakeTimeout: OPEN_MS });
  return new Promise((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.once('end', () => reject(new Error(`WS ${path} on the bridge answered HTTP ${res.statusCode}: ${body.slice(0, 300)}`)));
    });
    ws.once('error', reject);
    ws.once('open', () => resolve(createWebSocketStream(ws)));
  });
}

/** Throws unless `answer` is a 200 with exactly `bytes` bytes (and, when kept, the bytes served). */
function check(path: string, file: string, answer: HttpAnswer, bytes: number, expected?: Buffer): void {
  if (answer.status !== 200) throw new Error(`${path}: GET /${file} answered ${answer.status}`);
  if (answer.bodyBytes !== bytes) throw new Error(`${path}: GET /${file} gave ${answer.bodyBytes} bytes instead of ${bytes}`);
  if (expected && answer.body && !answer.body.equals(expected)) throw new Error(`${path}: GET /${file} did not give the file served`);
}

async function cancel(ctx: BenchContext, id: string): Promise<void> {
  const answer = await ctx.paddock.admin.request('POST', `/api/v1/executions/${id}/cancel`);
  if (answer.status !== 202) ctx.fail(`cancelling the ingress service ${id} answered ${answer.status}`);
  else await ctx.paddock.admin.waitFinal(id, 60_000);
}

/**
 * The ingress beside the relay it is built on: HTTP GETs to a Python server in an instance with no network,
 * through the gateway's ingress (`{id}-{port}.localhost`, one keep-alive TCP connection) and, as the
 * baseline, through one WebSocket tunnel of the WS-TCP bridge (HTTP/1.1 keep-alive inside it), with the
 * same client on both. Latency of a small file (`ingress_latency`, `relay_latency`) and MB/s of a
 * `--download-mb` file (`ingress_throughput`, `relay_throughput`), the two paths taking turns.
 */
export const ingress: Section = {
  name: 'ingress',
  async run(ctx) {
    const api = ctx.paddock.admin;
    const largeBytes = ctx.options.downloadMb * 1_000_000;
    ctx.progress(`ingress: starting a service instance with no network, serving ${SMALL_BYTES} B and ${ctx.options.downloadMb} MB`);
    const { id } = await api.submit({ ...SERVICE });
    const connections: HttpConnection[] = [];
    try {
      await api.waitState(id, 'executing');
      await startServer(ctx.docker, await containerOf(ctx.docker, id), PORT, { [SMALL]: SMALL_BYTES, [LARGE]: largeBytes });
      const host = `${id}-${PORT}.localhost`;
      await firstOk(ctx, host);
      const viaIngress = new HttpConnection(() => ingressStream(ctx.paddock.ingressPort), { Host: host, Authorization: `Bearer ${api.token}` }, 'ingress');
      connections.push(viaIngress);
      const viaRelay = new HttpConnection(() => tunnelStream(ctx.paddock.bridgePort, id, PORT, api.token), { Host: `127.0.0.1:${PORT}` }, 'relay');
      connections.push(viaRelay);
      const small = servedFile(SMALL_BYTES);

      const latency = await sampled(
        ctx,
        'relay_latency/ingress_latency',
        async () => {
          const relay = await viaRelay.get(`/${SMALL}`, true);
          check('relay', SMALL, relay, SMALL_BYTES, small);
          const through = await viaIngress.get(`/${SMALL}`, true);
          check('ingress', SMALL, through, SMALL_BYTES, small);
          return { relay: relay.ms, ingress: through.ms };
        },
        (s) => `relay ${ms(s.relay)}, ingress ${ms(s.ingress)}`,
        { count: GETS_PER_N * ctx.options.samples, warmups: WARMUP_GETS },
      );
      const mbPerS = (answer: HttpAnswer) => answer.bodyBytes / 1e6 / (answer.ms / 1000);
      const throughput = await sampled(
        ctx,
        'relay_throughput/ingress_throughput',
        async () => {
          const relay = await viaRelay.get(`/${LARGE}`);
          check('relay', LARGE, relay, largeBytes);
          const through = await viaIngress.get(`/${LARGE}`);
          check('ingress', LARGE, through, largeBytes);
          return { relay: mbPerS(relay), ingress: mbPerS(through) };
        },
        (s) => `relay ${s.relay.toFixed(1)} MB/s, ingress ${s.ingress.toFixed(1)} MB/s`,
      );
      ctx.progress(`ingress: ${viaRelay.opened} tunnel(s) and ${viaIngress.opened} ingress connection(s) carried every GET`);
      const figures: Figure[] = [
        { name: 'relay_latency', unit: 'ms', samples: latency.map((s) => s.relay) },
        { name: 'ingress_latency', unit: 'ms', samples: latency.map((s) => s.ingress), baseline: 'relay_latency' },
        { name: 'relay_throughput', unit: 'MB/s', samples: throughput.map((s) => s.relay) },
        { name: 'ingress_throughput', unit: 'MB/s', samples: throughput.map((s) => s.ingress), baseline: 'relay_throughput' },
      ];
      return figures;
    } finally {
      for (const c of connections) c.close();
      await cancel(ctx, id);
    }
  },
};
