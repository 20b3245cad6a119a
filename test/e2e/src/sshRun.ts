import { Client } from 'ssh2';
import WebSocket, { createWebSocketStream } from 'ws';

/** What GET /api/v1/instances/{id}/ssh gives the owner. */
export interface SshAccess {
  /** Where the gateway tunnels to the instance's sshd (port 2222 inside). */
  readonly tunnelPath: string;
  readonly username: string;
  readonly password: string;
}

/**
 * Runs a command over SSH, the connection carried by the gateway's tunnel (the broker's relay, into the
 * instance's network namespace): the only way to its sshd, which no host port leads to. Resolves with
 * stdout and stderr together.
 */
export function sshRun(gatewayUrl: string, token: string, access: SshAccess, command: string): Promise<string> {
  const ws = new WebSocket(gatewayUrl.replace(/^http/, 'ws') + access.tunnelPath, { headers: { authorization: `Bearer ${token}` } });
  return new Promise<string>((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => reject(new Error(`the tunnel was refused: HTTP ${res.statusCode}`)));
    ws.once('error', reject);
    ws.once('open', () => {
      const client = new Client();
      client
        .on('ready', () => {
          client.exec(command, (err, stream) => {
            if (err) return reject(err);
            let out = '';
            stream.on('data', (d: Buffer) => (out += d.toString()));
            stream.stderr.on('data', (d: Buffer) => (out += d.toString()));
            stream.on('close', () => {
              client.end();
              resolve(out);
            });
          });
        })
        .on('error', reject)
        .on('close', () => ws.close())
        .connect({ sock: createWebSocketStream(ws), username: access.username, password: access.password, readyTimeout: 10_000 });
    });
  });
}
