// Who may reach a port through the ingress, and what the others are told; the signed tickets and cookies
// that carry a login; what of a request reaches the instance (never a Paddock credential).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { signShareToken } from '../src/ports/shareLinks.js';
import { acceptsHtml, mayReach, needsOwner, needsProject, refusal, type Caller } from '../src/ingress/access.js';
import {
  cookieValues,
  downstreamHeaders,
  paddockBearer,
  safeNext,
  shareParams,
  splitTarget,
  upstreamHeaders,
  upstreamTarget,
  withoutOwnCookies,
} from '../src/ingress/forwarding.js';
import { IngressTokens, LOGIN_TICKET_TTL_MS } from '../src/ingress/ingressTokens.js';
import type { ClosedPortRoute, PortRoute, PortVisibility } from '../src/ingress/routeTable.js';

const OWNER = 'u-owner';
const OTHER = 'u-other';
const port = (visibility: PortVisibility): PortRoute => ({ kind: 'port', instanceId: 'inst1', port: 3000, visibility, brokerId: 'b1', cluster: 'paddock-relay.b1' });
const closed: ClosedPortRoute = { kind: 'closed', instanceId: 'inst1' };
const nobody: Caller = { userId: null, shares: [] };
const user = (userId: string): Caller => ({ userId, shares: [] });
const sharing = (instanceId: string, p: number): Caller => ({ userId: null, shares: [{ instanceId, port: p, expiresAtMs: Date.now() + 60_000 }] });

test('a private port: its owner, or a share link of that very port; no one else', () => {
  assert.equal(mayReach(port('private'), 3000, user(OWNER), OWNER), true);
  assert.equal(mayReach(port('private'), 3000, user(OTHER), OWNER), false);
  assert.equal(mayReach(port('private'), 3000, nobody, OWNER), false);
  assert.equal(mayReach(port('private'), 3000, sharing('inst1', 3000), OWNER), true);
  assert.equal(mayReach(port('private'), 3000, sharing('inst1', 3001), OWNER), false, 'a link of another port');
  assert.equal(mayReach(port('private'), 3000, sharing('inst2', 3000), OWNER), false, 'a link of another instance');
  assert.equal(mayReach(port('private'), 3000, user(OWNER), null), false, 'an instance with no execution row has no owner');
});

test("a project port is its project members' and its owner's; a public port is anyone's", () => {
  assert.equal(mayReach(port('project'), 3000, user(OTHER), OWNER), false, 'outside the project');
  assert.equal(mayReach(port('project'), 3000, user(OTHER), OWNER, true), true, 'a member of the project');
  assert.equal(mayReach(port('private'), 3000, user(OTHER), OWNER, true), false, 'a private port stays the owner\'s');
  assert.equal(mayReach(port('project'), 3000, nobody, OWNER, true), false, 'no user, no project');
  assert.equal(needsProject(port('project'), user(OTHER), OWNER), true);
  assert.equal(needsProject(port('project'), user(OWNER), OWNER), false, 'the owner needs no lookup');
  assert.equal(needsProject(port('private'), user(OTHER), OWNER), false);
  assert.equal(mayReach(port('project'), 3000, user(OWNER), OWNER), true);
  assert.equal(mayReach(port('public'), 3000, nobody, null), true);
  assert.equal(mayReach(port('public'), 3000, user(OTHER), OWNER), true);
});

test('a closed port (running, nothing listens) is shown to the owner and to a share link of it only', () => {
  assert.equal(mayReach(closed, 8000, user(OWNER), OWNER), true);
  assert.equal(mayReach(closed, 8000, user(OTHER), OWNER), false);
  assert.equal(mayReach(closed, 8000, sharing('inst1', 8000), OWNER), true);
  assert.equal(mayReach(closed, 8000, sharing('inst1', 3000), OWNER), false);
  assert.equal(mayReach(closed, 8000, nobody, OWNER), false);
});

test('the owner is looked up only for a user on a port that is not public', () => {
  assert.equal(needsOwner(port('private'), user(OWNER)), true);
  assert.equal(needsOwner(closed, user(OWNER)), true);
  assert.equal(needsOwner(port('public'), user(OWNER)), false);
  assert.equal(needsOwner(port('private'), nobody), false);
  assert.equal(needsOwner(port('private'), sharing('inst1', 3000)), false);
});

test('refused: a browser with no credential is sent to log in; anything else gets 404', () => {
  const page = { method: 'GET', acceptsHtml: true, upgrade: false };
  assert.equal(refusal(nobody, page), 'login');
  assert.equal(refusal(nobody, { ...page, method: 'HEAD' }), 'login');
  assert.equal(refusal(user(OTHER), page), 'not-found', 'a user who may not see it: as if it did not exist');
  assert.equal(refusal(sharing('inst1', 3001), page), 'not-found');
  assert.equal(refusal(nobody, { ...page, acceptsHtml: false }), 'not-found', 'curl, fetch: no redirect');
  assert.equal(refusal(nobody, { ...page, method: 'POST' }), 'not-found', 'a redirect would lose the body');
  assert.equal(refusal(nobody, { ...page, upgrade: true }), 'not-found', 'a WebSocket cannot follow a redirect');
});

test('acceptsHtml: what browsers send when they navigate, not */* nor text/html;q=0', () => {
  assert.equal(acceptsHtml('text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'), true);
  assert.equal(acceptsHtml('TEXT/HTML'), true);
  assert.equal(acceptsHtml('*/*'), false);
  assert.equal(acceptsHtml('application/json'), false);
  assert.equal(acceptsHtml('text/html;q=0'), false);
  assert.equal(acceptsHtml(undefined), false);
});

test('a login ticket works once, for its host, within a minute; it is never a session, nor a session a ticket', () => {
  const tokens = new IngressTokens(randomBytes(32), 3_600_000);
  const now = Date.now();
  const { ticket, expiresAtMs } = tokens.issueTicket(OWNER, 'inst1-3000.localhost', now);
  assert.equal(expiresAtMs, now + LOGIN_TICKET_TTL_MS);
  assert.equal(tokens.redeemTicket(ticket, 'inst1-3001.localhost', now), null, 'another host');
  assert.equal(tokens.session(ticket, 'inst1-3000.localhost', now), null, 'a ticket is no session');
  assert.equal(tokens.redeemTicket(ticket, 'inst1-3000.localhost', now + LOGIN_TICKET_TTL_MS), null, 'expired');
  assert.equal(tokens.redeemTicket(ticket, 'inst1-3000.localhost', now), OWNER);
  assert.equal(tokens.redeemTicket(ticket, 'inst1-3000.localhost', now), null, 'used once already');

  const session = tokens.issueSession(OWNER, 'inst1-3000.localhost', now);
  assert.equal(session.maxAgeS, 3600);
  assert.equal(tokens.session(session.value, 'inst1-3000.localhost', now), OWNER);
  assert.equal(tokens.session(session.value, '3000-inst1.localhost', now), null, 'host-bound, even to the other form of the same port');
  assert.equal(tokens.session(session.value, 'inst1-3000.localhost', now + 3_600_000), null, 'expired');
  assert.equal(tokens.redeemTicket(session.value, 'inst1-3000.localhost', now), null, 'a session is no ticket');
});

test('tickets and sessions signed with another key, altered or malformed are refused', () => {
  const tokens = new IngressTokens(randomBytes(32), 3_600_000);
  const other = new IngressTokens(randomBytes(32), 3_600_000);
  const { value } = other.issueSession(OWNER, 'h.localhost');
  assert.equal(tokens.session(value, 'h.localhost'), null, 'another key');
  const mine = tokens.issueSession(OWNER, 'h.localhost').value;
  const [body, mac] = mine.split('.') as [string, string];
  const forged = Buffer.from(JSON.stringify({ u: OTHER, h: 'h.localhost', e: Date.now() + 60_000 })).toString('base64url');
  assert.equal(tokens.session(`${forged}.${mac}`, 'h.localhost'), null, 'another payload under the same MAC');
  assert.equal(tokens.session(`${body}.${mac.slice(0, -2)}AA`, 'h.localhost'), null, 'an altered MAC');
  for (const junk of ['', '.', 'a.b.c', 'x'.repeat(5000), `${body}`]) assert.equal(tokens.session(junk, 'h.localhost'), null, junk.slice(0, 20));
});

test('a share link grants its instance and port until it expires', () => {
  const key = randomBytes(32);
  const tokens = new IngressTokens(key, 3_600_000);
  const expiresAtMs = Date.now() + 5_000;
  const token = signShareToken({ instanceId: 'inst1', port: 3000, expiresAtMs }, key);
  assert.deepEqual(tokens.share(token, 'inst1', 3000), { instanceId: 'inst1', port: 3000, expiresAtMs });
  assert.equal(tokens.share(token, 'inst1', 3001), null);
  assert.equal(tokens.share(token, 'inst2', 3000), null);
  assert.equal(tokens.share(token, 'inst1', 3000, expiresAtMs), null, 'expired');
  assert.equal(new IngressTokens(randomBytes(32), 1000).share(token, 'inst1', 3000), null, 'another key');
});

test('after a login only a path of the same host: no open redirect', () => {
  assert.equal(safeNext('/app/page?x=1#top'), '/app/page?x=1#top');
  assert.equal(safeNext('/'), '/');
  for (const next of ['//evil.example/', '/\\evil.example/', 'https://evil.example/', 'javascript:alert(1)', '', undefined, '/a\r\nSet-Cookie: x=1', 'evil']) {
    assert.equal(safeNext(next), '/', String(next));
  }
});

test('Paddock bearer tokens are recognised as such; an application\'s own Authorization is not', () => {
  assert.equal(paddockBearer('Bearer pdk_abc'), 'pdk_abc');
  assert.equal(paddockBearer('bearer prt_x_y'), 'prt_x_y');
  assert.equal(paddockBearer('Bearer eyJhbGciOi.app.token'), undefined);
  assert.equal(paddockBearer('Basic dXNlcjpwYXNz'), undefined);
});

test('the instance never gets a Paddock credential, hop-by-hop headers or made-up x-paddock-* headers', () => {
  const rawHeaders = [
    'Host', 'inst1-3000.localhost:8080',
    'Authorization', 'Bearer pdk_secret',
    'Cookie', 'theme=dark; paddock_session=abc.def; paddock_share=v1.1.x; lang=en',
    'Connection', 'keep-alive, X-Hop',
    'X-Hop', 'gone',
    'Keep-Alive', 'timeout=5',
    'Transfer-Encoding', 'chunked',
    'X-Paddock-Instance-Id', 'forged',
    'X-Forwarded-For', '10.0.0.1',
    'X-Forwarded-Proto', 'https',
    'Expect', '100-continue',
    'Accept', 'text/html',
  ];
  const headers = Object.fromEntries(Array.from({ length: rawHeaders.length / 2 }, (_, i) => [rawHeaders[2 * i]!.toLowerCase(), rawHeaders[2 * i + 1]!]));
  const out = upstreamHeaders({ rawHeaders, headers }, { remoteAddress: '::ffff:127.0.0.1', proto: 'http' });
  const pairs = Array.from({ length: out.length / 2 }, (_, i) => [out[2 * i]!, out[2 * i + 1]!]);
  assert.deepEqual(pairs, [
    ['Host', 'inst1-3000.localhost:8080'],
    ['Cookie', 'theme=dark; lang=en'],
    ['Accept', 'text/html'],
    ['X-Forwarded-For', '10.0.0.1, 127.0.0.1'],
    ['X-Forwarded-Proto', 'http'],
    ['X-Forwarded-Host', 'inst1-3000.localhost:8080'],
  ]);
  const app = upstreamHeaders({ rawHeaders: ['Authorization', 'Bearer app-token', 'Cookie', 'paddock_session=x'], headers: {} }, { remoteAddress: undefined, proto: 'http', upgrade: 'websocket' });
  assert.deepEqual(app, ['Authorization', 'Bearer app-token', 'X-Forwarded-Proto', 'http', 'Connection', 'Upgrade', 'Upgrade', 'websocket']);
});

test("the instance may not set the ingress's cookies, nor pass hop-by-hop headers back", () => {
  const raw = ['Set-Cookie', 'paddock_session=x; Path=/', 'Set-Cookie', 'app=1', 'Transfer-Encoding', 'chunked', 'Connection', 'keep-alive', 'Content-Type', 'text/plain'];
  assert.deepEqual(downstreamHeaders(raw, { upgraded: false }), ['Set-Cookie', 'app=1', 'Content-Type', 'text/plain']);
  assert.deepEqual(downstreamHeaders(['Upgrade', 'websocket', 'Connection', 'Upgrade', 'Set-Cookie', 'paddock_share=y'], { upgraded: true }), ['Upgrade', 'websocket', 'Connection', 'Upgrade']);
});

test('cookies and the share parameter are taken out, everything else stays as sent', () => {
  assert.equal(withoutOwnCookies('paddock_session=a'), undefined);
  assert.equal(withoutOwnCookies('a=1;paddock_share=2;  b=3'), 'a=1; b=3');
  assert.deepEqual(cookieValues({ headers: { cookie: 'paddock_session=one; x=1; paddock_session="two"' } }, 'paddock_session'), ['one', 'two']);
  const target = splitTarget('/a%2Fb/c?x=1&paddock_share=v1.2.abc&y=%20&paddock%5Fshare=again');
  assert.deepEqual(target, { path: '/a%2Fb/c', query: 'x=1&paddock_share=v1.2.abc&y=%20&paddock%5Fshare=again' });
  assert.deepEqual(shareParams(target.query), ['v1.2.abc', 'again']);
  assert.equal(upstreamTarget(target), '/a%2Fb/c?x=1&y=%20');
  assert.equal(upstreamTarget(splitTarget('/?paddock_share=x')), '/');
  assert.equal(upstreamTarget(splitTarget('http://h.localhost/p?q=1')), '/p?q=1', 'absolute form');
});
