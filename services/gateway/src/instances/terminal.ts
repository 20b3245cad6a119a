import type { WebSocket } from 'ws';
import { Client, type ClientChannel } from 'ssh2';
import type { Logger } from '@paddock/telemetry';
import type { AccessReply } from '@paddock/proto';

/** A message a terminal client sends as text; everything it sends as binary is keyboard input. */
type Control = { type: 'resize'; cols: number; rows: number };

const DEFAULT_SIZE = { cols: 120, rows: 32 };

function parseControl(text: string): Control | undefined {
  try {
    const m = JSON.parse(text) as Partial<Control>;
    if (m.type === 'resize' && Number.isInteger(m.cols) && Number.isInteger(m.rows) && m.cols! > 0 && m.rows! > 0 && m.cols! <= 1000 && m.rows! <= 1000) {
      return { type: 'resize', cols: m.cols!, rows: m.rows! };
    }
  } catch {
    // not JSON: ignored below
  }
  return undefined;
}

/**
 * Bridges one WebSocket to an SSH session in the instance, which lands in tmux session `agent`: output
 * goes to the socket as binary frames; binary frames from it are input; a text frame
 * `{"type":"resize","cols":C,"rows":R}` resizes. Closing either side closes the other.
 */
export function bridgeTerminal(socket: WebSocket, access: AccessReply, opts: { executionId: string; cols?: number; rows?: number; log: Logger }): void {
  const ssh = new Client();
  let channel: ClientChannel | undefined;
  const pending: Buffer[] = [];
  // The size asked for before the shell is open is the one it opens with.
  let size = { cols: opts.cols ?? DEFAULT_SIZE.cols, rows: opts.rows ?? DEFAULT_SIZE.rows };
  let closed = false;
  const close = (code: number, reason: string) => {
    if (closed) return;
    closed = true;
    channel?.close();
    ssh.end();
    if (socket.readyState === socket.OPEN || socket.readyState === socket.CONNECTING) socket.close(code, reason);
  };

  socket.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) {
      const control = parseControl(data.toString('utf8'));
      if (!control) return;
      size = { cols: control.cols, rows: control.rows };
      channel?.setWindow(size.rows, size.cols, 0, 0);
      return;
    }
    if (channel) channel.write(data);
    else pending.push(data);
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
      for (const data of pending.splice(0)) stream.write(data);
      stream.on('data', (d: Buffer) => {
        if (socket.readyState === socket.OPEN) socket.send(d, { binary: true });
      });
      stream.stderr.on('data', (d: Buffer) => {
        if (socket.readyState === socket.OPEN) socket.send(d, { binary: true });
      });
      stream.on('close', () => close(1000, 'the session ended'));
    });
  });
  ssh.on('error', (err) => {
    opts.log.warn({ err, executionId: opts.executionId }, 'terminal SSH connection failed');
    close(1011, `cannot reach the instance: ${err.message}`.slice(0, 120));
  });
  ssh.on('close', () => close(1000, 'the session ended'));
  ssh.connect({
    host: access.sshHost,
    port: access.sshPort,
    username: access.username,
    password: access.password,
    readyTimeout: 10_000,
    keepaliveInterval: 15_000,
  });
}
