// The terminal bridge between a WebSocket and an SSH session, against a real SSH server (ssh2's, which
// speaks the protocol sshd speaks) and a real WebSocket client: keys sent as text frames are input, output
// arrives as binary frames, and a slow viewer slows the program down instead of filling the gateway.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import ssh2, { type Server, type ServerChannel } from 'ssh2';
import { WebSocket, WebSocketServer } from 'ws';
import { createLogger } from '@paddock/telemetry';
import { bridgeTerminal, TERMINAL_HIGH_WATER_BYTES } from '../src/instances/terminal.js';

// ssh2 is CommonJS, and Node finds only some of its exports by name.
const { Server: SshServer, utils } = ssh2;
const MIB = 1024 * 1024;
const log = createLogger('terminal-test', 'silent');

/** What the shell of the next session does, and what it saw. */
interface Shell {
  onOpen(stream: ServerChannel): void;
}

let ssh: Server;
let sshPort: number;
let shell: Shell;
const windowChanges: { cols: number; rows: number }[] = [];
let wss: WebSocketServer;
let wsUrl: string;

before(async () => {
  const hostKey = utils.generateKeyPairSync('ed25519').private;
  ssh = new SshServer({ hostKeys: [hostKey] }, (client) => {
    client.on('authentication', (ctx) => (ctx.method === 'password' && ctx.username === 'agent' && ctx.password === 'pw' ? ctx.accept() : ctx.reject(['password'])));
    client.on('error', () => {});
    client.on('session', (accept) => {
      const session = accept();
      session.on('pty', (ok) => ok?.());
      session.on('window-change', (ok, _reject, info) => {
        windowChanges.push({ cols: info.cols, rows: info.rows });
        ok?.();
      });
      session.on('shell', (ok) => shell.onOpen(ok()));
    });
  });
  ssh.listen(0, '127.0.0.1');
  await once(ssh, 'listening');
  sshPort = (ssh.address() as AddressInfo).port;
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  wsUrl = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`;
  wss.on('connection', (socket) =>
    bridgeTerminal(socket, { username: 'agent', password: 'pw', connect: async () => connect(sshPort, '127.0.0.1') }, { executionId: 'test', log }),
  );
});

after(async () => {
  for (const c of wss?.clients ?? []) c.terminate();
  await new Promise((r) => wss?.close(r));
  await new Promise((r) => ssh?.close(r));
});

async function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('keys sent as text frames are input, a resize text frame resizes, and output comes as binary frames', async () => {
  let input = '';
  let stream: ServerChannel | undefined;
  shell = {
    onOpen(s) {
      stream = s;
      s.on('data', (d: Buffer) => (input += d.toString('utf8')));
    },
  };
  const ws = new WebSocket(wsUrl);
  const frames: { data: Buffer; binary: boolean }[] = [];
  ws.on('message', (data: Buffer, binary: boolean) => frames.push({ data, binary }));
  await once(ws, 'open');
  try {
    ws.send('ls -l\r'); // a text frame, as xterm.js's attach addon and websocat send keys
    ws.send('{'); // a keystroke that merely looks like the start of a control message
    ws.send(Buffer.from('echo ✓\r'), { binary: true });
    await until('the keys at the shell', () => input === 'ls -l\r{echo ✓\r');
    ws.send(JSON.stringify({ type: 'resize', cols: 91, rows: 27 }));
    await until('the resize', () => windowChanges.some((w) => w.cols === 91 && w.rows === 27));
    assert.equal(input, 'ls -l\r{echo ✓\r', 'a control message is not input');

    stream!.write('héllo ✓\r\n');
    await until('the output', () => Buffer.concat(frames.map((f) => f.data)).toString('utf8') === 'héllo ✓\r\n');
    assert.ok(frames.every((f) => f.binary), 'output is sent as binary frames');
  } finally {
    ws.close();
  }
});

test('a viewer that stops reading pauses the program behind the terminal; nothing is lost when it reads again', { timeout: 120_000 }, async () => {
  const TOTAL = 48 * MIB;
  const CHUNK = 64 * 1024;
  let produced = 0;
  shell = {
    // A program that writes as fast as the session takes it: byte i is i % 251, so order can be checked.
    onOpen(s) {
      const pump = () => {
        while (produced < TOTAL) {
          const chunk = Buffer.alloc(Math.min(CHUNK, TOTAL - produced));
          for (let i = 0; i < chunk.length; i++) chunk[i] = (produced + i) % 251;
          produced += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
        s.end();
      };
      pump();
    },
  };
  const ws = new WebSocket(wsUrl);
  let received = 0;
  let outOfOrder = -1;
  ws.on('message', (data: Buffer) => {
    for (let i = 0; i < data.length; i++) if (outOfOrder < 0 && data[i] !== (received + i) % 251) outOfOrder = received + i;
    received += data.length;
  });
  await once(ws, 'open');
  try {
    const memoryBefore = process.memoryUsage().arrayBuffers;
    ws.pause();
    await new Promise((r) => setTimeout(r, 3_000));
    const producedWhilePaused = produced;
    const memoryWhilePaused = process.memoryUsage().arrayBuffers - memoryBefore;
    // Socket buffers of the two hops, the SSH window and the bridge's own high-water mark: a few MiB.
    assert.ok(producedWhilePaused < 24 * MIB, `the program wrote ${producedWhilePaused} bytes while nobody read`);
    assert.ok(producedWhilePaused > TERMINAL_HIGH_WATER_BYTES, `the program could write (${producedWhilePaused} bytes)`);
    assert.ok(memoryWhilePaused < 32 * MIB, `buffers grew by ${memoryWhilePaused} bytes`);
    await new Promise((r) => setTimeout(r, 1_000));
    assert.ok(produced - producedWhilePaused < MIB, 'the program stays paused');

    ws.resume();
    await until('everything to arrive', () => received >= TOTAL, 90_000);
    assert.equal(received, TOTAL);
    assert.equal(outOfOrder, -1, `byte ${outOfOrder} out of order`);
  } finally {
    ws.close();
  }
});
