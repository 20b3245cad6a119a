// POST /api/v1/instances/{id}/exec when its HTTP client goes away: the gateway cancels the broker's call
// and the broker kills the command, its children included, inside the container. What the container runs is
// read with `docker top` (the engine's view), not through Paddock.
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { after, before, test } from 'node:test';
import { startPaddock, type RunningPaddock } from '@paddock/testkit';
import { containersOf, docker, waitFor } from '../src/index.js';

/** How soon after the client left the command must be gone. */
const KILLED_WITHIN_MS = 5_000;

let paddock: RunningPaddock;
let serviceId: string;
let containerId: string;

before(async () => {
  paddock = await startPaddock();
  const service = await paddock.admin.submit({ kind: 'shell', command: 'echo service-ready', service: true, timeoutS: 600 });
  serviceId = service.id;
  await paddock.admin.waitState(serviceId, 'executing');
  await waitFor('the service to idle', async () => /idling/.test(await paddock.admin.logs(serviceId)), 30_000, 250);
  const [container] = (await containersOf(serviceId)).filter((c) => c.State === 'running');
  assert.ok(container, 'the service has a running container');
  containerId = container.Id;
});

after(async () => {
  if (serviceId) await paddock?.admin.request('POST', `/api/v1/executions/${serviceId}/cancel`);
  await paddock?.stop();
});

/** The command lines of the container's processes that contain `marker`, as the engine lists them. */
async function processesWith(marker: string): Promise<string[]> {
  const top = (await docker.getContainer(containerId).top({ ps_args: '-eo pid,args' })) as { Titles: string[]; Processes: string[][] };
  const args = top.Titles.indexOf('COMMAND');
  return top.Processes.map((p) => p[args] ?? p.join(' ')).filter((line) => line.includes(marker));
}

/** Starts an exec and hands back the request (to abandon it) and, once they come, the response and its text so far. */
function startExec(cmd: string[]): { req: ClientRequest; response: Promise<IncomingMessage>; text: () => string } {
  const url = new URL(`${paddock.url}/api/v1/instances/${serviceId}/exec`);
  let text = '';
  // No agent: the socket is this request's alone, and destroying the request closes it.
  const req = request(url, { method: 'POST', agent: false, headers: { authorization: `Bearer ${paddock.admin.token}`, 'content-type': 'application/json' } });
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    req.once('response', (res) => {
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('error', () => {});
      resolve(res);
    });
    req.once('error', reject);
  });
  // A test that abandons the request before the answer never awaits it: its "socket hang up" is expected.
  response.catch(() => {});
  req.end(JSON.stringify({ cmd }));
  return { req, response, text: () => text };
}

/** Abandons `req` and measures how long until no process with `marker` is left in the container. */
async function leaveAndTimeKill(req: ClientRequest, marker: string): Promise<number> {
  req.on('error', () => {});
  const leftAt = Date.now();
  req.destroy();
  await waitFor(`the processes with "${marker}" to be killed`, async () => (await processesWith(marker)).length === 0, KILLED_WITHIN_MS + 5_000, 100);
  return Date.now() - leftAt;
}

test('a client that goes away mid-stream: the command and its children are killed within seconds', async () => {
  const marker = String(randomInt(100_000, 999_999));
  // sh stays the parent of sleep (no exec), so the whole tree has to go, not only the process the broker started.
  const exec = startExec(['sh', '-c', `echo started; sleep ${marker}; echo never`]);
  const res = await exec.response;
  assert.equal(res.statusCode, 200);
  await waitFor('the first output line', async () => exec.text().includes('"started'), 15_000, 50);
  const running = await waitFor('the command to show in docker top', async () => {
    const found = await processesWith(`sleep ${marker}`);
    return found.length > 0 ? found : undefined;
  });
  assert.ok(running.length >= 1, running.join('\n'));

  const tookMs = await leaveAndTimeKill(exec.req, marker);
  assert.ok(tookMs < KILLED_WITHIN_MS, `killed ${tookMs} ms after the client left`);
  assert.doesNotMatch(exec.text(), /never|exitCode/, 'the command did not go on to its end');

  // The instance itself is untouched: it runs, and takes the next command.
  assert.equal((await paddock.admin.get(serviceId)).state, 'executing');
  const next = await paddock.admin.request('POST', `/api/v1/instances/${serviceId}/exec`, { cmd: ['echo', 'still-here'] });
  assert.equal(next.status, 200);
  assert.match(String(next.body), /"data":"still-here\\n"[\s\S]*"exitCode":0/);
});

test('a client that goes away before the command printed anything: it is killed too', async () => {
  const marker = String(randomInt(100_000, 999_999));
  const exec = startExec(['sleep', marker]);
  // The gateway answers with the first output, so the client has had no response yet.
  await waitFor('the command to show in docker top', async () => (await processesWith(`sleep ${marker}`)).length > 0, 15_000, 100);
  const tookMs = await leaveAndTimeKill(exec.req, marker);
  assert.ok(tookMs < KILLED_WITHIN_MS, `killed ${tookMs} ms after the client left`);
  await assert.rejects(exec.response, /socket hang up/, 'no answer ever came');
});

test('a client that stays gets the whole output and the exit code (the command is not killed early)', async () => {
  const marker = String(randomInt(100_000, 999_999));
  const exec = startExec(['sh', '-c', `echo started; sleep 2; echo done-${marker}; exit 3`]);
  const res = await exec.response;
  assert.equal(res.statusCode, 200);
  await new Promise((resolve) => res.once('end', resolve));
  const lines = exec.text().trim().split('\n').map((l) => JSON.parse(l) as { stream?: string; data?: string; exitCode?: number });
  assert.equal(lines.filter((l) => l.stream === 'stdout').map((l) => l.data).join(''), `started\ndone-${marker}\n`);
  assert.deepEqual(lines.at(-1), { exitCode: 3 });
});
