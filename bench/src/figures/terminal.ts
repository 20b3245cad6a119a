import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type Docker from 'dockerode';
import { Client } from 'ssh2';
import WebSocket from 'ws';
import { ms, sampled, type BenchContext, type Figure, type Section } from '../section.js';

/** The instance both paths type into: a service whose shell idles in tmux session `agent`. */
const SERVICE = { kind: 'shell', command: 'echo service-ready', service: true, network: 'bridge' } as const;

/** Where sshd listens inside every agent and service (Paddock's base image). */
const INSTANCE_SSH_PORT = 2222;
const CONNECT_INSIDE_TIMEOUT_MS = 10_000;

/** The size both paths attach with: the gateway's default, also asked for explicitly on the socket. */
const SIZE = { cols: 120, rows: 32 } as const;

/**
 * Keys typed for the echo figures. None of them can come back by accident: they are not in the hex of the
 * container's hostname, in "agent" or "bash", in a month's name (tmux's status line shows these), nor among
 * the letters tmux uses for line drawing; escape sequences are stripped before looking for them.
 */
const KEYS = 'zZQXiW';
const BACKSPACE = '\x7f';

/** Counted keystrokes per path: `KEYS_PER_SAMPLE` × `--n`; plus `KEY_WARMUPS` uncounted ones. */
const KEYS_PER_SAMPLE = 5;
const KEY_WARMUPS = 5;
/** Counted throughput runs per path: `--n`, at most this many (plus one uncounted). */
const MAX_FLOODS = 5;

/** What the throughput command prints: 20 MB of zeros in base64, 200 columns a line, then the end marker. */
const FLOOD_BYTES = 20_000_000;
const FLOOD_COLUMNS = 200;
const MARK = 'PADDOCK-BENCH-END';
// The marker is built by printf so that the command line echoed back does not contain it.
const FLOOD_COMMAND = `head -c ${FLOOD_BYTES} /dev/zero | base64 -w ${FLOOD_COLUMNS}; printf '%s-%s-%s\\n' PADDOCK BENCH END`;
const BASE64_CHARS = Math.ceil(FLOOD_BYTES / 3) * 4;
/** Bytes the command writes into the pane: the base64 text, its newlines, and the marker line. */
export const FLOOD_PRINTED = BASE64_CHARS + Math.ceil(BASE64_CHARS / FLOOD_COLUMNS) + MARK.length + 1;

/** A screen is settled once nothing has come for this long. */
const SETTLE_MS = 50;
const ATTACH_SETTLE_MS = 500;
const ECHO_TIMEOUT_MS = 10_000;
const FLOOD_TIMEOUT_MS = 300_000;

/** Escape sequences a terminal (tmux, here) sends around text: CSI, OSC, DCS, charset choices, two-byte ones. */
const ESCAPES = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[P_^][^\x1b]*\x1b\\|[()*+-./][ -~]|[ -/]*[0-~])/g;

/** The printable text of what a terminal sent: escape sequences and control characters removed. */
export function visibleText(raw: string): string {
  return raw.replace(ESCAPES, '').replace(/[\x00-\x1f\x7f]/g, '');
}

/** What the bench reads from a terminal: chunks as they arrive, each checked by whoever waits. */
class Output {
  private readonly watchers = new Set<(chunk: Buffer, at: number) => void>();
  private lastAt = performance.now();
  private anything = false;
  private ended: Error | undefined;

  push(chunk: Buffer): void {
    const at = performance.now();
    this.lastAt = at;
    this.anything = true;
    for (const w of [...this.watchers]) w(chunk, at);
  }

  end(reason: Error): void {
    this.ended ??= reason;
    for (const w of [...this.watchers]) w(Buffer.alloc(0), performance.now());
  }

  /**
   * Resolves with the `performance.now()` of the chunk for which `done` first says true; only chunks that
   * arrive after this call are shown to it. Call it before sending what it waits for.
   */
  watch(what: string, done: (chunk: Buffer) => boolean, timeoutMs: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
      const finish = (err: Error | undefined, at?: number) => {
        clearTimeout(timer);
        this.watchers.delete(watcher);
        if (err) reject(err);
        else resolve(at!);
      };
      const watcher = (chunk: Buffer, at: number) => {
        if (this.ended) return finish(new Error(`the terminal closed while waiting for ${what}: ${this.ended.message}`));
        if (done(chunk)) finish(undefined, at);
      };
      this.watchers.add(watcher);
      if (this.ended) watcher(Buffer.alloc(0), performance.now());
    });
  }

  /** Resolves once something came and then nothing for `quietMs`. */
  async settled(quietMs: number, timeoutMs = 30_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (this.ended) throw new Error(`the terminal closed: ${this.ended.message}`);
      const now = performance.now();
      const left = this.lastAt + quietMs - now;
      if (this.anything && left <= 0) return;
      if (now > deadline) throw new Error(`the terminal did not settle within ${timeoutMs} ms`);
      await sleep(Math.max(1, this.anything ? left : quietMs));
    }
  }
}

/** A terminal attached to tmux session `agent`, one way or the other. */
interface Terminal {
  readonly output: Output;
  send(text: string): void;
  close(): Promise<void>;
}

export interface SshLogin {
  readonly username: string;
  readonly password: string;
}

/**
 * Run by `node -e` inside the instance's network namespace: connects to 127.0.0.1:PORT there and hands the
 * connected socket to its parent over Node's IPC channel (the descriptor itself passes, SCM_RIGHTS), then
 * exits. A socket stays in the namespace it was made in, whoever holds it.
 */
const CONNECT_INSIDE = [
  "const socket = require('node:net').connect(Number(process.argv[1]), '127.0.0.1');",
  "socket.once('connect', () => process.send('connected', socket, () => process.exit(0)));",
  "socket.once('error', (err) => { console.error(err.message); process.exit(1); });",
].join(' ');

/**
 * A TCP connection to 127.0.0.1:port inside the network namespace of host process `pid` (the instance's
 * first process), held by this process: `nsenter -t PID -n` runs a helper there that connects and passes
 * the socket back. The bytes then go straight between this process and the server inside, with nothing
 * relaying them: the same connection an `ssh` run in the namespace would have. Needs root, as the broker's
 * relay does; nothing of the instance is published on the host to connect to instead.
 */
function connectInside(pid: number, port: number): Promise<Socket> {
  const helper = spawn('nsenter', ['-t', String(pid), '-n', '--', process.execPath, '-e', CONNECT_INSIDE, String(port)], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  helper.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  return new Promise<Socket>((resolve, reject) => {
    const timer = setTimeout(() => {
      helper.kill('SIGKILL');
      reject(new Error(`no connection to 127.0.0.1:${port} inside the namespace of pid ${pid} within ${CONNECT_INSIDE_TIMEOUT_MS} ms`));
    }, CONNECT_INSIDE_TIMEOUT_MS);
    helper.on('message', (_message: unknown, socket?: Socket) => {
      clearTimeout(timer);
      if (socket) resolve(socket);
    });
    helper.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run nsenter (root and util-linux are needed): ${err.message}`, { cause: err }));
    });
    // After its IPC channel and stderr: a socket it sent has arrived by then, and so has its reason.
    helper.once('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`cannot connect to 127.0.0.1:${port} inside the namespace of pid ${pid} (exit ${code}): ${stderr.trim() || 'no socket came back'}`));
    });
  });
}

/** The host pid of the instance's first process, whose network namespace is the instance's. */
async function instancePid(docker: Docker, executionId: string): Promise<number> {
  const [container, ...more] = await docker.listContainers({ filters: { label: [`io.paddock.execution-id=${executionId}`] } });
  if (!container || more.length > 0) throw new Error(`expected one running container of execution ${executionId}, found ${more.length + (container ? 1 : 0)}`);
  const info = await docker.getContainer(container.Id).inspect();
  if (!info.State.Running || !info.State.Pid) throw new Error(`the container of execution ${executionId} is not running`);
  return info.State.Pid;
}

/**
 * A direct SSH session over `sock` (a connection to sshd itself), opened as the gateway's bridge opens its
 * own (services/gateway/src/instances/terminal.ts: ssh2, password, a pty shell `xterm-256color` of the same
 * size); the login shell's profile attaches it to tmux. One difference on purpose: TCP_NODELAY, as
 * OpenSSH's client sets it for every session with a tty. ssh2 does not set it, and writes each SSH packet
 * in three pieces (length, ciphertext, MAC): with Nagle on, the second piece waits for the server's delayed
 * ACK, about 40 ms a keystroke. A baseline with that delay in it would hide the same delay in the gateway;
 * see bench/README.md.
 */
function sshTerminal(sock: Socket, login: SshLogin): Promise<Terminal> {
  const client = new Client();
  const output = new Output();
  return new Promise((resolve, reject) => {
    client.once('error', reject);
    client.once('ready', () => {
      client.setNoDelay(true);
      client.shell({ term: 'xterm-256color', cols: SIZE.cols, rows: SIZE.rows }, (err, stream) => {
        if (err) {
          client.end();
          return reject(err);
        }
        stream.on('data', (d: Buffer) => output.push(d));
        stream.stderr.on('data', (d: Buffer) => output.push(d));
        client.on('close', () => output.end(new Error('the SSH connection closed')));
        client.on('error', (e: Error) => output.end(e));
        resolve({
          output,
          send: (text) => void stream.write(text),
          close: () =>
            new Promise<void>((done) => {
              client.once('close', () => done());
              stream.close();
              client.end();
            }),
        });
      });
    });
    client.connect({ sock, username: login.username, password: login.password, readyTimeout: 10_000, keepaliveInterval: 15_000 });
  });
}

/** The gateway's terminal: WS /terminal/{id} with the bearer token; keys go as binary frames. */
function wsTerminal(ctx: BenchContext, id: string): Promise<Terminal> {
  const api = ctx.paddock.admin;
  const url = `${api.url.replace(/^http/, 'ws')}/terminal/${id}?cols=${SIZE.cols}&rows=${SIZE.rows}`;
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${api.token}` } });
  const output = new Output();
  ws.on('message', (d: Buffer) => output.push(d));
  return new Promise((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => reject(new Error(`WS /terminal/${id} answered HTTP ${res.statusCode}`)));
    ws.once('error', reject);
    ws.once('open', () => {
      ws.on('close', (code, reason) => output.end(new Error(`the socket closed (${code} ${reason.toString()})`)));
      ws.on('error', (e) => output.end(e));
      resolve({
        output,
        send: (text) => ws.send(Buffer.from(text, 'utf8'), { binary: true }),
        close: () =>
          new Promise<void>((done) => {
            if (ws.readyState === WebSocket.CLOSED) return done();
            ws.once('close', () => done());
            ws.close();
          }),
      });
    });
  });
}

/**
 * One keystroke: ms from just before the key is sent to the chunk in which it shows (escape sequences
 * stripped). Then, untimed, a backspace erases it and the screen is let settle.
 */
async function keystroke(term: Terminal, key: string): Promise<number> {
  let seen = '';
  const echoed = term.output.watch(
    `the echo of ${JSON.stringify(key)}`,
    (chunk) => {
      seen += chunk.toString('latin1');
      return visibleText(seen).includes(key);
    },
    ECHO_TIMEOUT_MS,
  );
  const t0 = performance.now();
  term.send(key);
  const elapsed = (await echoed) - t0;
  const erased = term.output.watch('the backspace to be echoed', () => true, ECHO_TIMEOUT_MS);
  term.send(BACKSPACE);
  await erased;
  await term.output.settled(SETTLE_MS);
  return elapsed;
}

interface Flood {
  readonly ms: number;
  /** Bytes received on this path until the marker (tmux redraws, so not what the command printed). */
  readonly wireBytes: number;
}

/** The throughput command: ms from just before its Enter to the chunk in which the end marker shows. */
async function flood(term: Terminal): Promise<Flood> {
  let tail = '';
  let wireBytes = 0;
  const ended = term.output.watch(
    'the end marker of the throughput command',
    (chunk) => {
      wireBytes += chunk.length;
      const text = tail + chunk.toString('latin1');
      if (text.includes(MARK)) return true;
      tail = text.slice(-MARK.length);
      return false;
    },
    FLOOD_TIMEOUT_MS,
  );
  const t0 = performance.now();
  term.send(`${FLOOD_COMMAND}\r`);
  const elapsed = (await ended) - t0;
  await term.output.settled(ATTACH_SETTLE_MS);
  return { ms: elapsed, wireBytes };
}

/** MB (10^6 bytes) the throughput command printed, per second of `ms`. */
const mbPerS = (elapsedMs: number): number => FLOOD_PRINTED / 1e6 / (elapsedMs / 1000);

/** Echo and throughput samples of one path, on a terminal of its own, closed afterwards. */
async function measurePath(ctx: BenchContext, prefix: string, open: () => Promise<Terminal>): Promise<{ echo: number[]; throughput: number[] }> {
  const term = await open();
  try {
    // The attach redraws the whole screen: the samples start once it is over.
    await term.output.settled(ATTACH_SETTLE_MS);
    let typed = 0;
    const echo = await sampled(ctx, `${prefix}_echo`, () => keystroke(term, KEYS[typed++ % KEYS.length]!), ms, {
      count: KEYS_PER_SAMPLE * ctx.options.samples,
      warmups: KEY_WARMUPS,
    });
    const floods = await sampled(ctx, `${prefix}_throughput`, () => flood(term), (f) => `${mbPerS(f.ms).toFixed(1)} MB/s (${ms(f.ms)}, ${(f.wireBytes / 1e6).toFixed(1)} MB on the wire)`, {
      count: Math.min(ctx.options.samples, MAX_FLOODS),
    });
    return { echo, throughput: floods.map((f) => mbPerS(f.ms)) };
  } finally {
    await term.close();
  }
}

/** Starts the service both paths type into and waits until its shell idles in tmux. */
async function startService(ctx: BenchContext): Promise<string> {
  const api = ctx.paddock.admin;
  const { id } = await api.submit({ ...SERVICE });
  await api.waitState(id, 'executing');
  const deadline = Date.now() + 30_000;
  while (!/idling/.test(await api.logs(id))) {
    if (Date.now() > deadline) throw new Error(`service ${id} did not reach its idle shell within 30 s`);
    await sleep(100);
  }
  return id;
}

/**
 * Typing into an instance and reading a flood of output: over SSH straight to sshd (a connection made in
 * the instance's network namespace), then through the gateway's WebSocket bridge, against the same
 * container and the same tmux session.
 */
export const terminal: Section = {
  name: 'terminal',
  async run(ctx) {
    const api = ctx.paddock.admin;
    ctx.progress('terminal: starting a service instance');
    const id = await startService(ctx);
    try {
      const r = await api.request('GET', `/api/v1/instances/${id}/ssh`);
      if (r.status !== 200) throw new Error(`GET /api/v1/instances/${id}/ssh answered ${r.status}: ${JSON.stringify(r.body)}`);
      const login = r.body as SshLogin;
      const pid = await instancePid(ctx.docker, id);
      const raw = await measurePath(ctx, 'raw_ssh', async () => sshTerminal(await connectInside(pid, INSTANCE_SSH_PORT), login));
      const paddock = await measurePath(ctx, 'terminal', () => wsTerminal(ctx, id));
      const figures: Figure[] = [
        { name: 'raw_ssh_echo', unit: 'ms', samples: raw.echo },
        { name: 'terminal_echo', unit: 'ms', samples: paddock.echo, baseline: 'raw_ssh_echo' },
        { name: 'raw_ssh_throughput', unit: 'MB/s', samples: raw.throughput },
        { name: 'terminal_throughput', unit: 'MB/s', samples: paddock.throughput, baseline: 'raw_ssh_throughput' },
      ];
      return figures;
    } finally {
      const cancel = await api.request('POST', `/api/v1/executions/${id}/cancel`);
      if (cancel.status !== 202) ctx.fail(`cancelling the terminal service ${id} answered ${cancel.status}`);
      else {
        const final = await api.waitFinal(id, 60_000);
        if (final.state !== 'cancelled') ctx.fail(`the terminal service ${id} ended ${final.state}, not cancelled`);
      }
    }
  },
};
