// The egress allowlist through the API: a job with no network reaches a host of its allowlist through
// Paddock's egress proxy (HTTP_PROXY inside), gets a 403 naming the list for any other, and a request
// that mixes an allowlist with the open network, or names something that is not a host, is refused.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { startPaddock, type RunningPaddock } from '@paddock/testkit';

let paddock: RunningPaddock;
/** HTTP servers on this host's loopback: one on the job's allowlist, one not. */
let allowed: Server;
let other: Server;
let otherHits = 0;

const portOf = (server: Server) => (server.address() as AddressInfo).port;

before(async () => {
  allowed = createServer((req, res) => res.end(`allowed-server ${req.url}\n`));
  other = createServer((_req, res) => {
    otherHits++;
    res.end('other-server\n');
  });
  await Promise.all([allowed, other].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
  // The test's "internet" is this host's loopback, which egress reaches only when the broker allows it.
  paddock = await startPaddock({ env: { PADDOCK_EGRESS_ALLOW_INTERNAL: 'true' } });
});

after(async () => {
  await paddock?.stop();
  for (const s of [allowed, other]) {
    s?.closeAllConnections();
    await new Promise((r) => s?.close(r));
  }
});

test('a job with no network reaches its allowlisted host through the egress proxy and is refused another', async () => {
  const allowedUrl = `http://localhost:${portOf(allowed)}/simple`;
  const otherUrl = `http://localhost:${portOf(other)}/`;
  // The proxy's listener inside comes up just after the job starts: curl retries a refused connection.
  const curl = 'curl -sS --retry 10 --retry-connrefused --retry-delay 1 --max-time 20';
  const created = await paddock.admin.submit({
    kind: 'shell',
    command: `echo "proxy=$http_proxy"; ${curl} ${allowedUrl}; ${curl} -w 'status=%{http_code}\\n' ${otherUrl}`,
    egress: [`localhost:${portOf(allowed)}`],
    // Paddock leaves localhost out of the proxy by default; this test's hosts are on the broker's loopback.
    env: { NO_PROXY: '', no_proxy: '' },
  });
  assert.equal(created.network, 'none');
  const done = await paddock.admin.waitState(created.id, 'completed', 90_000);
  assert.equal(done.exitCode, 0);
  const logs = await paddock.admin.logs(created.id);
  assert.match(logs, /proxy=http:\/\/127\.0\.0\.1:3128/);
  assert.match(logs, /allowed-server \/simple/);
  assert.match(logs, new RegExp(`egress to localhost:${portOf(other)} is not allowed; this execution may reach: localhost:${portOf(allowed)}\\s+status=403`));
  assert.equal(otherHits, 0, 'a host not on the list is never connected to');
});

test('an allowlist with "network": "bridge", or an entry that is not a host, is a 400 that says why', async () => {
  const bridged = await paddock.admin.request('POST', '/api/v1/executions', { kind: 'shell', command: 'true', network: 'bridge', egress: ['pypi.org'] });
  assert.equal(bridged.status, 400);
  assert.match(bridged.body.error.message, /"egress" and "network": "bridge" contradict/);
  const bad = await paddock.admin.request('POST', '/api/v1/executions', { kind: 'shell', command: 'true', egress: ['pypi.org', 'https://github.com'] });
  assert.equal(bad.status, 400);
  assert.match(bad.body.error.message, /egress entry "https:\/\/github\.com" is not a host/);
});
