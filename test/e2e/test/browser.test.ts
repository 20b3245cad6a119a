// The terminal page as a person uses it: Debian's Chromium opens /ui/terminal/{id} on a running service.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startPaddock, type RunningPaddock } from '@paddock/testkit';
import { waitFor } from '../src/index.js';

let paddock: RunningPaddock;
let browser: Browser;
let serviceId: string;
let shots: string;

before(async () => {
  shots = await mkdtemp(join(tmpdir(), 'paddock-browser-'));
  const starting = startPaddock();
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  paddock = await starting;
  const created = await paddock.admin.submit({ kind: 'shell', command: 'echo service-ready', service: true, network: 'bridge' });
  serviceId = created.id;
  await paddock.admin.waitState(serviceId, 'executing');
  await waitFor('the service to idle', async () => /idling/.test(await paddock.admin.logs(serviceId)));
});

after(async () => {
  await browser?.close();
  await paddock?.stop();
  await rm(shots, { recursive: true, force: true });
});

const pageUrl = (id: string) => `${paddock.url}/ui/terminal/${id}`;

/** What the terminal shows, row by row, as xterm.js renders it into the page. */
const screen = async (page: Page) => (await page.locator('.xterm-rows > div').allTextContents()).join('\n');

/** The token this browser keeps for the page (evaluated in the page, hence a string). */
const keptToken = (page: Page) => page.evaluate<string | null>("localStorage.getItem('paddock.token')");

/** The sizes of the terminal clients attached to tmux in the instance, e.g. ["91x27"]. */
async function tmuxClientSizes(): Promise<string[]> {
  const r = await paddock.admin.request('POST', `/api/v1/instances/${serviceId}/exec`, { cmd: ['tmux', 'list-clients', '-F', '#{client_width}x#{client_height}'] });
  assert.equal(r.status, 200);
  const lines = String(r.body).trim().split('\n').map((l) => JSON.parse(l) as { stream?: string; data?: string });
  return lines.filter((l) => l.stream === 'stdout').map((l) => l.data).join('').split('\n').filter((l) => l !== '');
}

test('the page and its assets are public, typed, revalidated, out of the OpenAPI document, and only what is listed', async () => {
  const page = await fetch(pageUrl(serviceId));
  assert.equal(page.status, 200);
  assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
  assert.equal(page.headers.get('cache-control'), 'no-cache');
  assert.ok(!(await page.text()).includes(paddock.admin.token), 'the page holds no secret');
  const again = await fetch(pageUrl(serviceId), { headers: { 'if-none-match': page.headers.get('etag')! } });
  assert.equal(again.status, 304);

  for (const [path, type] of [
    ['/ui/assets/terminal/terminal.js', 'text/javascript; charset=utf-8'],
    ['/ui/assets/terminal/terminal.css', 'text/css; charset=utf-8'],
    ['/ui/assets/xterm/xterm.mjs', 'text/javascript; charset=utf-8'],
    ['/ui/assets/xterm-css/xterm.css', 'text/css; charset=utf-8'],
    ['/ui/assets/addon-fit/addon-fit.mjs', 'text/javascript; charset=utf-8'],
  ] as const) {
    const r = await fetch(paddock.url + path);
    assert.equal(r.status, 200, path);
    assert.equal(r.headers.get('content-type'), type, path);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff', path);
    assert.ok((await r.arrayBuffer()).byteLength > 100, path);
  }
  for (const path of [
    '/ui/assets/terminal/..%2F..%2Fpackage.json',
    '/ui/assets/xterm/..%2Fpackage.json',
    '/ui/assets/terminal/%2E%2E',
    '/ui/assets/terminal/index.html',
    '/ui/assets/..%2F..%2Fpackage.json/x',
    '/ui/assets/terminal/../../package.json',
  ]) {
    const r = await fetch(paddock.url + path);
    assert.ok(r.status === 404 || r.status === 400, `${path} answered ${r.status}`);
    assert.doesNotMatch(await r.text(), /"workspaces"/, path);
  }
  const openapi = await paddock.admin.request('GET', '/api/v1/openapi.json');
  assert.deepEqual(Object.keys(openapi.body.paths).filter((p) => p.startsWith('/ui')), []);
});

test('a person pastes a token, types into the terminal, resizes the window, and sees it all', async () => {
  const context = await browser.newContext({ viewport: { width: 1000, height: 640 } });
  try {
    const page = await context.newPage();
    // A policy violation (CSP) or a failed load is reported here.
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(err.message));
    page.on('console', (m) => void (m.type() === 'error' && problems.push(m.text())));
    await page.goto(pageUrl(serviceId));
    await page.locator('#token-form').waitFor({ state: 'visible' });
    await page.fill('#token', paddock.admin.token);
    await page.click('#token-form button[type=submit]');
    await page.locator('#state[data-state="connected"]').waitFor({ timeout: 15_000 });
    assert.equal(await keptToken(page), paddock.admin.token, 'the token is kept');

    // Back on the page later: the kept token is used, no question asked.
    await page.reload();
    await page.locator('#state[data-state="connected"]').waitFor({ timeout: 15_000 });
    assert.equal(await page.locator('#token-form').isVisible(), false);
    await waitFor('tmux to draw', async () => (await screen(page)).trim().length > 0, 15_000);

    const size = async () => (await page.textContent('#size'))!.replace('×', 'x');
    const first = await size();
    await waitFor(`tmux to see the page's size ${first}`, async () => (await tmuxClientSizes()).includes(first), 10_000);

    await page.click('#terminal');
    await page.keyboard.type('echo browser-$((6*7))');
    await page.keyboard.press('Enter');
    await waitFor('the output in the page', async () => (await screen(page)).includes('browser-42'), 10_000);

    await page.setViewportSize({ width: 720, height: 420 });
    const second = await waitFor('the page to refit', async () => {
      const s = await size();
      return s !== first && s;
    });
    await waitFor(`the resize to reach tmux (${second})`, async () => (await tmuxClientSizes()).includes(second), 10_000);

    const shot = join(shots, 'terminal.png');
    await page.screenshot({ path: shot });
    const png = await readFile(shot);
    assert.ok(png.length > 1000, `the screenshot has ${png.length} bytes`);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG');
    assert.deepEqual(problems, [], 'no error in the page so far');

    // The instance goes away: the page says so and offers to reconnect, which then says why it cannot.
    assert.equal((await paddock.admin.request('POST', `/api/v1/executions/${serviceId}/cancel`)).status, 202);
    await page.locator('#state[data-state="closed"]').waitFor({ timeout: 30_000 });
    assert.match((await page.textContent('#message'))!, /terminal connection closed/);
    await paddock.admin.waitFinal(serviceId, 30_000);
    await page.click('#reconnect');
    await page.locator('#state[data-state="error"]').waitFor();
    assert.match((await page.textContent('#message'))!, /is not running \(409\)/);
  } finally {
    await context.close();
  }
});

test('a wrong token or an instance of someone else is explained on the page', async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(pageUrl(serviceId));
    await page.evaluate("localStorage.setItem('paddock.token', 'not-a-token')");
    await page.reload();
    await page.locator('#message').waitFor({ state: 'visible' });
    assert.match((await page.textContent('#message'))!, /API token was refused \(401\)/);
    assert.equal(await page.locator('#token-form').isVisible(), true, 'the form asks for another token');
    assert.equal(await keptToken(page), null, 'the wrong token is forgotten');

    const user = await paddock.admin.request('POST', '/api/v1/users', { name: 'erin' });
    await page.fill('#token', user.body.token);
    await page.click('#token-form button[type=submit]');
    await page.locator('#state[data-state="error"]').waitFor();
    assert.match((await page.textContent('#message'))!, /No instance .* for this token \(404\)/);
  } finally {
    await context.close();
  }
});
