import { connectivityState, type Client } from '@grpc/grpc-js';

/**
 * A client of a peer service, and since when its channel has been failing (TRANSIENT_FAILURE), from the
 * channel's own state changes. A channel that failed while its peer was away must not outlive the peer's
 * return: through xDS it would stay failed for good. When the control plane drops a silent peer,
 * grpc-js-xds tells the channel that its listener and cluster no longer exist, but keeps them in its
 * cache, and when the peer is back and the same resources come again it takes them for no news; the
 * channel never hears of them again. A new channel subscribes anew and is sent them. Dialled directly, it
 * would wait out its reconnect backoff. Whoever holds it makes a new one when `failedBefore` the moment it
 * last heard of the peer (a heartbeat).
 */
export class PeerChannel<C extends Client> {
  #failingSinceMs: number | undefined;

  constructor(
    readonly target: string,
    readonly client: C,
  ) {
    const channel = client.getChannel();
    const follow = (state: connectivityState): void => {
      if (state === connectivityState.SHUTDOWN) return;
      // No deadline: no timer that would keep the process alive; close() ends the watch (SHUTDOWN).
      channel.watchConnectivityState(state, Infinity, () => {
        const next = channel.getConnectivityState(false);
        if (next !== connectivityState.TRANSIENT_FAILURE) this.#failingSinceMs = undefined;
        else this.#failingSinceMs ??= Date.now();
        follow(next);
      });
    };
    follow(channel.getConnectivityState(false));
  }

  /** Failing, and since before `heardAtMs`: the peer was heard after the channel gave up on it. */
  failedBefore(heardAtMs: number): boolean {
    return this.#failingSinceMs !== undefined && this.#failingSinceMs < heardAtMs;
  }
}
