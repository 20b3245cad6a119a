import type { FastifyPluginAsync } from 'fastify';
import { topics, type Bus, type Subscription } from '@paddock/bus';
import type { Pool } from '@paddock/db';

const FRESH_MS = 5_000;

/** Watches the heartbeats of the services the gateway needs; /healthz is 200 once all are there. */
export class HealthWatch {
  private readonly seen = new Map<string, number>();
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

  async check(): Promise<{ ok: boolean; checks: Record<string, string> }> {
    const checks: Record<string, string> = {};
    checks['database'] = await this.pool.query('SELECT 1').then(() => 'ok', (err: Error) => `unreachable: ${err.message}`);
    checks['nats'] = this.bus.nc.isClosed() ? 'closed' : 'ok';
    for (const service of ['scheduler', 'broker']) {
      const at = this.seen.get(service);
      checks[service] = at !== undefined && Date.now() - at < FRESH_MS ? 'ok' : 'no heartbeat';
    }
    return { ok: Object.values(checks).every((c) => c === 'ok'), checks };
  }

  async stop(): Promise<void> {
    await Promise.all(this.subs.map((s) => s.stop()));
  }
}

export const healthRoutes: FastifyPluginAsync<{ health: HealthWatch }> = async (app, { health }) => {
  app.get(
    '/healthz',
    {
      config: { public: true },
      schema: {
        tags: ['health'],
        summary: 'Ready when the database, NATS, a scheduler and a broker all answer',
        response: {
          '2xx': { type: 'object', properties: { status: { type: 'string' }, checks: { type: 'object', additionalProperties: { type: 'string' } } } },
          '5xx': { type: 'object', properties: { status: { type: 'string' }, checks: { type: 'object', additionalProperties: { type: 'string' } } } },
        },
      },
    },
    async (_req, reply) => {
      const { ok, checks } = await health.check();
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', checks });
    },
  );
};
