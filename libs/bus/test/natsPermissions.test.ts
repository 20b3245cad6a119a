import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createUser } from 'nkeys.js';
import { checkOwnership, inboxPrefix, NATS_USERS, natsPermissions, natsServerConfig, SERVICES, topics, type NatsUser, type Topic } from '../src/index.js';

const registry: Topic<unknown>[] = Object.values(topics);
const publicKey = () => createUser().getPublicKey();

/** A NATS subject or subject pattern: non-empty tokens, `>` only as the last one. */
function isSubjectPattern(s: string): boolean {
  const tokens = s.split('.');
  return tokens.every((t, i) => t !== '' && !/\s/.test(t) && (t !== '>' || i === tokens.length - 1));
}

test('every topic is published by some service and heard by another, so that the registry says who owns it', () => {
  for (const topic of registry) {
    const { publishers, subscribers, consumers, readers, followers } = topic.owners;
    assert.ok(publishers.length > 0, `${topic.name} has no publisher`);
    const hearers = [...subscribers, ...Object.keys(consumers), ...readers, ...followers];
    assert.ok(hearers.length > 0, `${topic.name} is heard by nobody`);
  }
});

test("each service's permissions are its topics, its durables and its inbox, and nothing as wide as a wildcard over Paddock", () => {
  for (const service of SERVICES) {
    const p = natsPermissions(service);
    for (const s of [...p.publish.allow, ...p.subscribe.allow]) {
      assert.ok(isSubjectPattern(s), `${service}: "${s}" is not a subject`);
      assert.ok(!['>', 'paddock.>', 'paddock.v1.>', '$JS.>', '$JS.API.>', '_INBOX.>'].includes(s), `${service} may use ${s}`);
      assert.ok(!/^\$JS\.API\.(STREAM\.(DELETE|PURGE)|ACCOUNT)/.test(s), `${service} may ${s}`);
    }
    assert.deepEqual(p.subscribe.allow.filter((s) => s.startsWith('_INBOX')), [`${inboxPrefix(service)}.>`]);
    // Heartbeats under its own name only.
    assert.ok(p.publish.allow.includes(topics.serviceHeartbeat.subject(service)));
    assert.ok(!p.publish.allow.includes(topics.serviceHeartbeat.subject('*')));
  }
  assert.deepEqual(natsPermissions('admin'), { publish: { allow: ['>'] }, subscribe: { allow: ['>'] } });
  assert.throws(() => natsPermissions('nobody' as NatsUser), /unknown NATS user "nobody"/);
});

test('the permissions follow the ownership: who publishes, consumes, reads and follows what', () => {
  const gateway = natsPermissions('gateway');
  assert.ok(gateway.publish.allow.includes('paddock.v1.execution.*.requested'));
  assert.ok(gateway.publish.allow.includes('$JS.API.CONSUMER.CREATE.PADDOCK_EXECUTIONS.gateway-state.paddock.v1.execution.*.state'));
  assert.ok(gateway.publish.allow.includes('$JS.API.CONSUMER.CREATE.PADDOCK_OUTPUT.*.paddock.v1.output.*'));
  assert.ok(gateway.subscribe.allow.includes('paddock.v1.execution.*.state'));
  for (const subject of ['paddock.v1.deadletter.gateway-state', 'paddock.v1.execution.*.cancel', 'paddock.v1.execution.*.requested', 'paddock.v1.service.gateway.heartbeat']) {
    assert.ok(gateway.publish.allow.includes(subject), subject);
  }
  // What others publish: the scheduler's states, the broker's instances and output.
  assert.deepEqual(gateway.publish.allow.filter((s) => /^paddock\.v1\.(execution\.\*\.state|instance|output)/.test(s)), []);

  const broker = natsPermissions('broker');
  assert.deepEqual(broker.publish.allow.filter((s) => s.startsWith('paddock.')).sort(), [
    'paddock.v1.broker.*.heartbeat',
    'paddock.v1.instance.*.exited',
    'paddock.v1.instance.*.started',
    'paddock.v1.output.*',
    'paddock.v1.service.broker.heartbeat',
    'paddock.v1.usage.*.compute',
  ]);
  // It consumes nothing: no consumer API, no acks, no dead letters.
  assert.deepEqual(broker.publish.allow.filter((s) => /CONSUMER|\$JS\.ACK|deadletter/.test(s)), []);
  assert.deepEqual(broker.subscribe.allow, [`${inboxPrefix('broker')}.>`]);

  // Billing publishes LLM usage and budget alerts; only it may, and the broker may not publish LLM usage.
  const billing = natsPermissions('billing');
  assert.ok(billing.publish.allow.includes('paddock.v1.usage.*.llm'));
  assert.ok(billing.publish.allow.includes('paddock.v1.budget.*.exceeded'));
  assert.ok(!billing.publish.allow.includes('paddock.v1.usage.*.compute'));
  assert.ok(!gateway.publish.allow.includes('paddock.v1.usage.*.llm'));

  const scheduler = natsPermissions('scheduler');
  for (const durable of ['scheduler-requested', 'scheduler-cancel', 'scheduler-instance-started', 'scheduler-instance-exited']) {
    assert.ok(scheduler.publish.allow.includes(`paddock.v1.deadletter.${durable}`), durable);
    assert.ok(scheduler.publish.allow.some((s) => s.startsWith(`$JS.ACK.`) && s.includes(`.${durable}.`)), durable);
    assert.ok(scheduler.subscribe.allow.some((s) => s.startsWith('$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.') && s.endsWith(`.${durable}`)), durable);
  }
});

test('a registry whose permissions would not mean what it says is refused', () => {
  const withOwners = (topic: Topic<unknown>, owners: Partial<Topic<unknown>['owners']>): Topic<unknown> => ({ ...topic, owners: { ...topic.owners, ...owners } });
  assert.doesNotThrow(() => checkOwnership(registry));
  assert.throws(
    () => checkOwnership([...registry, withOwners(topics.executionCancel, { consumers: { gateway: ['scheduler-requested'] } })]),
    /durable "scheduler-requested" is declared twice/,
  );
  assert.throws(() => checkOwnership([withOwners(topics.executionCancel, { consumers: { scheduler: ['a.b'] } })]), /is not one subject token/);
  assert.throws(() => checkOwnership([withOwners(topics.brokerHeartbeat, { readers: ['scheduler'] })]), /broker\.heartbeat has readers but is not stored/);
  // The broker following state would be able to pull from the gateway's durable in the same stream.
  assert.throws(
    () => checkOwnership([withOwners(topics.executionState, { followers: ['broker'] })]),
    /broker follows execution\.state in PADDOCK_EXECUTIONS, where gateway keeps durable "gateway-state"/,
  );
});

test('natsServerConfig lists one user per key with its permissions, and refuses what nats-server would misread', () => {
  const users = NATS_USERS.map((user) => ({ user, publicKey: publicKey() }));
  const text = natsServerConfig({ host: '127.0.0.1', port: 4222, storeDir: '/var/lib/paddock/nats', users });
  for (const { user, publicKey: key } of users) assert.ok(text.includes(`# ${user}\n    {\n      nkey: "${key}"`), user);
  assert.match(text, /store_dir: "\/var\/lib\/paddock\/nats"/);
  assert.doesNotMatch(text, /no_auth_user/);
  // `$` outside quotes would be a variable to nats-server.
  assert.doesNotMatch(text, /[^"]\$JS/);

  const base = { host: '127.0.0.1', port: 4222, storeDir: '/s', users: [{ user: 'gateway' as const, publicKey: publicKey() }] };
  assert.throws(() => natsServerConfig({ ...base, users: [] }), /no users/);
  assert.throws(() => natsServerConfig({ ...base, port: 0 }), /port must be 1-65535/);
  assert.throws(() => natsServerConfig({ ...base, storeDir: '/a"b' }), /storeDir .* has a quote/);
  assert.throws(() => natsServerConfig({ ...base, users: [{ user: 'gateway', publicKey: 'UNOTAKEY' }] }), /not a public user nkey/);
  assert.throws(() => natsServerConfig({ ...base, users: [{ user: 'gateway', publicKey: createUser().getPublicKey().replace(/^U/, 'A') }] }), /not a public user nkey/);
  const key = publicKey();
  assert.throws(() => natsServerConfig({ ...base, users: [{ user: 'gateway', publicKey: key }, { user: 'gateway', publicKey: publicKey() }] }), /gateway is listed twice/);
  assert.throws(() => natsServerConfig({ ...base, users: [{ user: 'gateway', publicKey: key }, { user: 'broker', publicKey: key }] }), /broker has the key of another user/);
  assert.throws(() => natsServerConfig({ ...base, users: [{ user: 'root' as NatsUser, publicKey: key }] }), /unknown user "root"/);
});
