import { ABSENT, type DeltaResponse, type XdsNode } from '../cache/watch.js';
import { AdsStream, type StreamContext } from './adsStream.js';
import type { DeltaDiscoveryRequest, DeltaDiscoveryResponse } from './messages.js';
import { TypeProgress } from './streamStatus.js';

class DeltaProgress extends TypeProgress {
  wildcard = false;
  readonly subscribed = new Set<string>();
  /** Name -> the version the client was sent (ABSENT: told it does not exist). */
  readonly known = new Map<string, string>();
}

/**
 * One DeltaAggregatedResources call. The client subscribes and unsubscribes by name; each response carries
 * only what changed for it and what is gone. A resource counts as the client's once sent: after a NACK it
 * is not sent again until it changes (sending the same one again would be rejected the same way).
 */
export class DeltaStream extends AdsStream<DeltaProgress> {
  constructor(
    context: StreamContext,
    private readonly write: (response: DeltaDiscoveryResponse) => void,
  ) {
    super(context, 'delta');
  }

  /** Handles one request; throws AdsStreamError when the stream must end. */
  onRequest(request: DeltaDiscoveryRequest): void {
    if (this.closed) return;
    const who = this.identify(request);
    if (!who) return;
    const { node, group, typeUrl } = who;
    let progress = this.types.get(typeUrl);
    if (!progress) {
      progress = new DeltaProgress(typeUrl);
      // The legacy wildcard: a first request that names nothing wants everything of the type.
      progress.wildcard = request.resourceNamesSubscribe.length === 0;
      for (const [name, version] of Object.entries(request.initialResourceVersions)) progress.known.set(name, version);
      this.types.set(typeUrl, progress);
    }
    // Unlike state of the world, a request with a stale nonce still changes the subscription (it may be the
    // only request saying so); it acknowledges nothing.
    if (this.answer(progress, request, node) === 'stale') {
      this.context.log.debug({ stream: this.context.id, typeUrl, nonce: request.responseNonce, current: progress.nonce }, 'stale nonce: subscription applied, nothing acknowledged');
    }
    this.#subscribe(progress, request);
    progress.cancel?.();
    progress.cancel = undefined;
    this.#watch(group, node, progress);
  }

  #subscribe(progress: DeltaProgress, request: DeltaDiscoveryRequest): void {
    for (const name of request.resourceNamesSubscribe) {
      if (name === '*') progress.wildcard = true;
      else progress.subscribed.add(name);
    }
    for (const name of request.resourceNamesUnsubscribe) {
      if (name === '*') {
        progress.wildcard = false;
        for (const known of progress.known.keys()) if (!progress.subscribed.has(known)) progress.known.delete(known);
        continue;
      }
      progress.subscribed.delete(name);
      // Under a wildcard the resource stays the client's; otherwise the client dropped it.
      if (!progress.wildcard) progress.known.delete(name);
    }
  }

  #watch(group: string, node: XdsNode, progress: DeltaProgress): void {
    let answered = false;
    const cancel = this.context.watcher.watchDelta(
      group,
      { typeUrl: progress.typeUrl, wildcard: progress.wildcard, subscribed: new Set(progress.subscribed), known: new Map(progress.known) },
      (response) => {
        answered = true;
        progress.cancel = undefined;
        this.#send(node, progress, response);
      },
    );
    if (!answered) progress.cancel = cancel;
  }

  #send(node: XdsNode, progress: DeltaProgress, response: DeltaResponse): void {
    if (this.closed) return;
    const nonce = this.nextNonce();
    progress.sent(nonce, response.systemVersion, this.context.now());
    for (const r of response.resources) progress.known.set(r.name, r.version);
    for (const name of response.removed) {
      if (progress.subscribed.has(name)) progress.known.set(name, ABSENT);
      else progress.known.delete(name);
    }
    this.write({
      systemVersionInfo: response.systemVersion,
      resources: response.resources.map((r) => ({ name: r.name, version: r.version, resource: { typeUrl: r.typeUrl, value: r.body } })),
      typeUrl: response.typeUrl,
      removedResources: response.removed,
      nonce,
      controlPlane: this.context.controlPlane,
    });
    this.context.observer.pushed?.({ node, typeUrl: progress.typeUrl, version: response.systemVersion, nonce, resources: response.resources.length });
  }
}
