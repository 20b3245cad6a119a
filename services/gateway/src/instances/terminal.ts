import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { Client, type ClientChannel } from 'ssh2';
import type { Logger } from '@paddock/telemetry';

/** A message a terminal client sends as a text frame; any other frame is keyboard input. */
type Control = { type: 'resize'; cols: number; rows: number };

const DEFAULT_SIZE = { cols: 120, rows: 32 };

/**
 * Output bytes handed to the WebSocket but not yet written to its TCP socket: above the high-water mark the
 * SSH channel is paused (sshd, then tmux, then the program wait), below the low one it resumes. This bounds
 * what a slow viewer can make the gateway hold.
 */
export const TERMINAL_HIGH_WATER_BYTES = 1024 * 1024;
const TERMINAL_LOW_WATER_BYTES = 256 * 1024;
/** Input received before the shell is open; above it the socket stops being read until it is. */
const PENDING_INPUT_MAX_BYTES = 1024 * 1024;

function parseControl(text: string): Control | undefined {
  // Only what looks like a JSON object can be one: a keystroke such as "{" stays input.
  if (!text.startsWith('{') || !text.endsWith('}')) return undefined;
  try {
    const m = JSON.parse(text) as Partial<Control>;
    if (m.type === 'resize' && Number.isInteger(m.cols) && Number.isInteger(m.rows) && m.cols! > 0 && m.rows! > 0 && m.cols! <= 1000 && m.rows! <= 1000) {
      return { type: 'resize', cols: m.cols!, rows: m.rows! };
    }
  } catch {
    // not JSON: input
  }
  return undefined;
}

/** How the terminal logs in to the instance's sshd, and the connection it does it over. */
export interface TerminalLogin {
  readonly username: string;
  readonly password: string;
  /** A byte stream to the instance's sshd: a Relay stream to its port 2222 (BrokerDirectory.relay). */
  connect(): Promise<Duplex>;
}

/**
 * Bridges one WebSocket to an SSH session in the instance, which lands in tmux session `agent`: output
 * goes to the socket as binary frames. From the socket, a text frame `{"type":"resize","cols":C,"rows":R}`
 * resizes; every other frame, binary or text (xterm.js's attach addon and websocat send keys as text), is
 * input. Both directions respect backpressure. Closing either side closes the other.
 */
export function bridgeTerminal(socket: WebSocket, login: TerminalLogin, opts: { executionId: string; cols?: number; rows?: number; log: Logger }): void {
  const ssh = new Client();
  let connection: Duplex | undefined;
  let channel: ClientChannel | undefined;
  const pending: Buffer[] = [];
  let pendingBytes = 0;
  let inputPaused = false;
  // The size asked for before the shell is open is the one it opens with.
  let size = { cols: opts.cols ?? DEFAULT_SIZE.cols, rows: opts.rows ?? DEFAULT_SIZE.rows };
  let closed = false;
  const close = (code: number, reason: string) => {
    if (closed) return;
    closed = true;
    channel?.close();
    ssh.end();
    connection?.destroy();
    if (socket.readyState === socket.OPEN || socket.readyState === socket.CONNECTING) socket.close(code, reason);
  };

  const input = (data: Buffer) => {
    if (!channel) {
      pending.push(data);
      pendingBytes += data.length;
      if (pendingBytes > PENDING_INPUT_MAX_BYTES) socket.pause();
      return;
    }
    // A large paste: stop reading the socket until SSH has taken it.
    if (!channel.write(data) && !inputPaused) {
      inputPaused = true;
      socket.pause();
      channel.once('drain', () => {
        inputPaused = false;
        socket.resume();
      });
    }
  };

  socket.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) {
      const control = parseControl(data.toString('utf8'));
      if (control) {
        size = { cols: control.cols, rows: control.rows };
        channel?.setWindow(size.rows, size.cols, 0, 0);
        return;
      }
    }
    input(data);
  });
  socket.on('close', () => close(1000, 'closed'));
  socket.on('error', () => close(1011, 'socket error'));

  ssh.on('ready', () => {
    // Keystrokes are tiny packets that ssh2 writes in pieces: without this, Nagle holds each one back until
    // sshd's delayed ACK, about 40 ms per key.
    ssh.setNoDelay(true);
    ssh.shell({ term: 'xterm-256color', cols: size.cols, rows: size.rows }, (err, stream) => {
      if (err) return close(1011, `no shell: ${err.message}`);
      channel = stream;
      for (const data of pending.splice(0)) input(data);
      pendingBytes = 0;
      socket.resume();

      let unsentBytes = 0;
      let paused = false;
      const forward = (d: Buffer) => {
        if (socket.readyState !== socket.OPEN) return;
        unsentBytes += d.length;
        socket.send(d, { binary: true }, () => {
          unsentBytes -= d.length;
          if (paused && unsentBytes <= TERMINAL_LOW_WATER_BYTES) {
            paused = false;
            stream.resume();
            stream.stderr.resume();
          }
        });
        if (!paused && unsentBytes > TERMINAL_HIGH_WATER_BYTES) {
          paused = true;
          stream.pause();
          stream.stderr.pause();
        }
      };
      stream.on('data', forward);
      stream.stderr.on('data', forward);
      stream.on('close', () => close(1000, 'the session ended'));
    });
  });
  ssh.on('error', (err) => {
    opts.log.warn({ err, executionId: opts.executionId }, 'terminal SSH connection failed');
    close(1011, `cannot reach the instance: ${err.message}`.slice(0, 120));
  });
  ssh.on('close', () => close(1000, 'the session ended'));
  // A relayed stream may stay open for writing after the instance's side has ended (it allows half-open,
  // as TCP sockets here do not): the end of what the instance sends is the end of the session.
  ssh.on('end', () => close(1000, 'the session ended'));
  login.connect().then(
    (sock) => {
      connection = sock;
      if (closed) return void sock.destroy();
      ssh.connect({ sock, username: login.username, password: login.password, readyTimeout: 10_000, keepaliveInterval: 15_000 });
    },
    (err: unknown) => {
      opts.log.warn({ err, executionId: opts.executionId }, 'terminal cannot reach the instance');
      close(1011, `cannot reach the instance: ${(err as Error).message}`.slice(0, 120));
    },
  );
}
