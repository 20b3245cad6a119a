import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseUpstreams, startMeteringProxy, type RunAccount } from '@paddock/billing';
import { LlmCredentials } from '@paddock/proto';
import { LlmKey } from '@paddock/secrets';
import { createLogger } from '@paddock/telemetry';
import { startScriptedProvider } from '@paddock/testkit';
import { ms, since, type BenchContext, type Figure, type Section } from '../section.js';

/** Calls per side and per counted sample of the run's `--n`: latencies of a millisecond need many. */
const CALLS_PER_SAMPLE = 50;
const WARMUP_CALLS = 100;
const RUN_KEY = `plk_${randomBytes(24).toString('base64url')}`;
/** A small non-streamed chat call, as an agent's side call (a title, a quota check) is. */
const BODY = JSON.stringify({ model: 'gpt-4.1-mini', messages: [{ role: 'user', content: 'Say hi.' }], max_tokens: 16 });

/** Where a call goes: the stand-in's port, or the proxy's socket; each over one kept-alive connection. */
interface Target {
  readonly agent: Agent;
  readonly options: { host?: string; port?: number; socketPath?: string; path: string; headers: Record<string, string> };
}

/** One call to its last byte, in ms; the answer must be the stand-in's 200. */
function timeCall(target: Target): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request({ ...target.options, method: 'POST', agent: target.agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const took = since(t0);
        if (res.statusCode !== 200) return reject(new Error(`a call answered ${res.statusCode}: ${Buffer.concat(chunks).toString('utf8').slice(0, 300)}`));
        resolve(took);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(BODY);
  });
}

/**
 * What billing's metering proxy adds to an LLM call: the same small chat completion sent straight to a
 * stand-in provider on loopback TCP, and through the proxy on its unix socket (which looks the run up,
 * checks its budget, opens its sealed key, forwards over a kept-alive connection, reads the answer's usage
 * and publishes it). The proxy's ports (runs, budgets, the usage sink) are in memory here: what is timed is
 * the proxy itself, not PostgreSQL or NATS. Calls alternate between the two paths, so that both see the same
 * machine.
 */
export const llmProxy: Section = {
  name: 'llmProxy',
  async run(ctx: BenchContext): Promise<Figure[]> {
    const dir = await mkdtemp(join(tmpdir(), 'paddock-bench-llm-'));
    const provider = await startScriptedProvider({ fallback: { text: 'hi', usage: { inputTokens: 12, outputTokens: 2 } } });
    const llmKey = LlmKey.withKey(randomBytes(32));
    const executionId = randomUUID();
    const run: RunAccount = {
      executionId,
      ownerId: 'bench',
      projectId: 'bench',
      teamId: 'bench',
      workflowId: '',
      ended: false,
      sealedCredentials: llmKey.seal(Buffer.from(LlmCredentials.encode({ keys: { openai: 'sk-bench' } }).finish()).toString('base64'), executionId),
    };
    let published = 0;
    const proxy = await startMeteringProxy({
      socketPath: join(dir, 'llm-proxy.sock'),
      upstreams: parseUpstreams('PADDOCK_LLM_UPSTREAMS', `openai=${provider.url}`),
      llmKey,
      runs: { byKeyHash: async () => run },
      budgets: { blockingBudget: async () => undefined },
      usage: {
        publish: async () => {
          published++;
        },
      },
      log: createLogger('bench-llm-proxy', 'warn'),
    });
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${RUN_KEY}` };
    const direct: Target = { agent: new Agent({ keepAlive: true, maxSockets: 1 }), options: { host: '127.0.0.1', port: provider.port, path: '/v1/chat/completions', headers } };
    const proxied: Target = { agent: new Agent({ keepAlive: true, maxSockets: 1 }), options: { socketPath: proxy.socketPath, path: '/openai/v1/chat/completions', headers } };
    try {
      ctx.progress(`llm_direct, llm_proxied: ${WARMUP_CALLS} calls each (not counted)`);
      for (let i = 0; i < WARMUP_CALLS; i++) {
        await timeCall(direct);
        await timeCall(proxied);
      }
      const calls = CALLS_PER_SAMPLE * ctx.options.samples;
      const directMs: number[] = [];
      const proxiedMs: number[] = [];
      for (let i = 0; i < calls; i++) {
        directMs.push(await timeCall(direct));
        proxiedMs.push(await timeCall(proxied));
        if ((i + 1) % CALLS_PER_SAMPLE === 0) ctx.progress(`llm_direct, llm_proxied ${i + 1}/${calls}: ${ms(directMs[i]!)} direct, ${ms(proxiedMs[i]!)} through the proxy`);
      }
      if (published !== WARMUP_CALLS + calls) ctx.fail(`the proxy published ${published} usage events for ${WARMUP_CALLS + calls} calls`);
      if (provider.requests.some((r) => r.key !== 'sk-bench' && r.key !== RUN_KEY)) ctx.fail('a call reached the stand-in with a key that is neither the direct one nor the real one');
      return [
        { name: 'llm_direct', unit: 'ms', samples: directMs },
        { name: 'llm_proxied', unit: 'ms', samples: proxiedMs, baseline: 'llm_direct' },
        // Call by call: what the proxy added to the direct call made just before it.
        { name: 'llm_proxy_added', unit: 'ms', samples: proxiedMs.map((p, i) => p - directMs[i]!) },
      ];
    } finally {
      direct.agent.destroy();
      proxied.agent.destroy();
      await proxy.close();
      await provider.stop();
      await rm(dir, { recursive: true, force: true });
    }
  },
};
