// The gRPC API's guard (mutual TLS, the gateway alone) and prices as versioned data.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { credentials, status, type ServiceError } from '@grpc/grpc-js';
import { BillingClient, type ModelPrice } from '@paddock/proto';
import { call, eventually, llmUsage, newExecutionId, publish, startBillingStack, type BillingStack } from './support.js';

let stack: BillingStack;

before(async () => {
  stack = await startBillingStack();
});

after(async () => {
  await stack?.stop();
});

test('only the gateway may call: another service is PERMISSION_DENIED, a client without a plane certificate never gets in', async () => {
  const gateway = await stack.client('gateway');
  assert.equal((await call(gateway, gateway.admission, { projectId: 'p', teamId: 't' })).allowed, true);
  const scheduler = await stack.client('scheduler');
  for (const attempt of [
    () => call(scheduler, scheduler.admission, { projectId: 'p', teamId: 't' }),
    () => call(scheduler, scheduler.getPrices, { version: 0 }),
    () => call(scheduler, scheduler.deleteBudget, { id: 'bgt_x' }),
  ]) {
    await assert.rejects(attempt(), (err: ServiceError) => err.code === status.PERMISSION_DENIED && /scheduler may not call \/paddock\.v1\.Billing\/\w+; it is for gateway/.test(err.details));
  }
  const plain = new BillingClient(stack.billing.grpcAddress, credentials.createInsecure());
  try {
    await assert.rejects(call(plain, plain.getPrices, { version: 0 }), (err: ServiceError) => err.code === status.UNAVAILABLE);
  } finally {
    plain.close();
  }
});

test('a new price version prices what is ingested from then on; rows keep the version that priced them', async () => {
  const client = await stack.client();
  const v1 = await call(client, client.getPrices, { version: 0 });
  assert.equal(v1.version, 1);
  assert.equal(v1.createdBy, 'paddock');
  const before = newExecutionId();
  await publish.llm(stack.bus, llmUsage(before, { model: 'gpt-4o', inputTokens: 1_000_000, outputTokens: 0 }));
  await eventually('the first call priced', async () => ((await call(client, client.executionCost, { executionId: before })).costMicros > 0 ? true : undefined));

  const models: ModelPrice[] = [
    { provider: 'openai', model: 'GPT-4o', inputMicrosPerMillion: 1_000_000, outputMicrosPerMillion: 4_000_000, cacheReadMicrosPerMillion: 500_000, cacheWriteMicrosPerMillion: 0 },
    { provider: 'openai', model: 'our-fine-tune', inputMicrosPerMillion: 7_000_000, outputMicrosPerMillion: 0, cacheReadMicrosPerMillion: 0, cacheWriteMicrosPerMillion: 0 },
  ];
  const compute = { cpuMicrosPerMillionCpuSeconds: 1, memoryMicrosPerMillionGibSeconds: 2 };
  await assert.rejects(
    call(client, client.setPrices, { createdBy: 'u-admin', currency: 'EUR', note: '', models, compute }),
    (err: ServiceError) => err.code === status.INVALID_ARGUMENT && /prices are in USD; a new version must be too/.test(err.details),
  );
  const v2 = await call(client, client.setPrices, { createdBy: 'u-admin', currency: '', note: 'negotiated', models, compute });
  assert.deepEqual([v2.version, v2.createdBy, v2.currency, v2.note, v2.models.map((m) => m.model)], [2, 'u-admin', 'USD', 'negotiated', ['gpt-4o', 'our-fine-tune']]);
  assert.deepEqual((await call(client, client.getPrices, { version: 0 })).version, 2);
  assert.deepEqual((await call(client, client.getPrices, { version: 1 })).models.length, v1.models.length, 'old versions stay');
  await assert.rejects(call(client, client.getPrices, { version: 9 }), (err: ServiceError) => err.code === status.NOT_FOUND);

  const afterwards = newExecutionId();
  await publish.llm(stack.bus, llmUsage(afterwards, { model: 'gpt-4o-2024-11-20', inputTokens: 1_000_000, outputTokens: 0 }));
  await publish.llm(stack.bus, llmUsage(afterwards, { model: 'our-fine-tune', inputTokens: 1_000_000, outputTokens: 0 }));
  const cost = await eventually('both calls priced', async () => {
    const c = await call(client, client.executionCost, { executionId: afterwards });
    return c.models.reduce((n, m) => n + m.calls, 0) === 2 ? c : undefined;
  });
  assert.deepEqual(cost.models.map((m) => [m.model, m.costMicros, m.unpriced]), [
    ['gpt-4o-2024-11-20', 1_000_000, false],
    ['our-fine-tune', 7_000_000, false],
  ]);
  const versions = await stack.billing.pool.query('SELECT execution_id AS id, price_version AS v FROM usage WHERE execution_id = ANY($1) ORDER BY v', [[before, afterwards]]);
  assert.deepEqual(versions.rows, [{ id: before, v: 1 }, { id: afterwards, v: 2 }, { id: afterwards, v: 2 }]);
  assert.equal((await call(client, client.executionCost, { executionId: before })).costMicros, 2_500_000, 'a change of prices does not reprice the past');

  await assert.rejects(
    call(client, client.setPrices, { createdBy: 'u-admin', currency: 'USD', note: '', models: [{ ...models[0]!, inputMicrosPerMillion: -5 }], compute: { cpuMicrosPerMillionCpuSeconds: 1, memoryMicrosPerMillionGibSeconds: 1 } }),
    (err: ServiceError) => err.code === status.INVALID_ARGUMENT && /inputMicrosPerMillion/.test(err.details),
  );
  await assert.rejects(call(client, client.setPrices, { createdBy: 'u-admin', currency: 'USD', note: '', models: [], compute: undefined }), (err: ServiceError) => err.code === status.INVALID_ARGUMENT && /compute/.test(err.details));
});
