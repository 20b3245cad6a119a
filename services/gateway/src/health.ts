import type { FastifyPluginAsync } from 'fastify';
import { topics, type Bus, type Subscription } from '@paddock/bus';
import type { Pool } from '@paddock/db';

const FRESH_MS = 5_000;

/** The services the gateway needs, by the name their heartbeats carry. */
const NEEDED = ['scheduler', 'broker'] as const;

export interface HealthReport {
  readonly ok: boolean;
  /** One line per dependency: "ok", or what is wrong with it. */
  readonly checks: Record<string, string>;
  /** For a person: "ok", or what the gateway is waiting for. */
  readonly message: string;
}

/** Watches the heartbeats of the services the gateway needs; /healthz is 200 once all are there. */
export class HealthWatch {
  private readonly seen = new Map<string, number>();
  private readonly startedAtMs = Date.now();
  private subs: Subscription[] = [];

  constructor(
    private readonly pool: Pool,
    private readonly bus: Bus,
  ) {}

  start(): void {
    this.subs = [
      this.bus.subscribe(topics.serviceHeartbeat, '*', ({ message }) => this.seen.set(message.service, Date.now())),
      this.bus.subscribe(topics.brokerHeartbeat, '*', () => this.seen.set('broker', Date.now())),
    ];
  }

  async check(nowMs = Date.now()): Promise<HealthReport> {
    const checks: Record<string, string> = {};
    checks['database'] = await this.pool.query('SELECT 1').then(() => 'ok', (err: Error) => `unreachable: ${err.message}`);
    checks['nats'] = this.bus.nc.isClosed() ? 'closed' : 'ok';
    for (const service of NEEDED) {
      const at = this.seen.get(service);
      // A service that is starting (waiting for PostgreSQL, say) beats only once it is ready.
      checks[service] =
        at === undefined ? `no heartbeat in the ${Math.round((nowMs - this.startedAtMs) / 1000)} s since the gateway started: is a ${service} running?`
        : nowMs - at >= FRESH_MS ? `no heartbeat for ${Math.round((nowMs - at) / 1000)} s`
        : 'ok';
    }
    const missing = Object.entries(checks).filter(([, c]) => c !== 'ok');
    return {
      ok: missing.length === 0,
      checks,
      message: missing.length === 0 ? 'ok' : `waiting for ${missing.map(([name, c]) => `${name} (${c})`).join(', ')}`,
    };
  }

  async stop(): Promise<void> {
    await Promise.all(this.subs.map((s) => s.stop()));
  }
}

const healthBody = {
  type: 'object',
  properties: {
    status: { type: 'string' },
    message: { type: 'string' },
    checks: { type: 'object', additionalProperties: { type: 'string' } },
  },
} as const;

export const healthRoutes: FastifyPluginAsync<{ health: HealthWatch }> = async (app, { health }) => {
  app.get(
    '/healthz',
    {
      config: { public: true },
      schema: {
        tags: ['health'],
        summary: 'Ready when the database, NATS, a scheduler and a broker all answer; otherwise 503 saying what it waits for',
        response: { '2xx': healthBody, '5xx': healthBody },
      },
    },
    async (_req, reply) => {
      const { ok, checks, message } = await health.check();
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', message, checks });
    },
  );
};
