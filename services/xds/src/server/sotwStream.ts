import type { SotwResponse, XdsNode } from '../cache/watch.js';
import { AdsStream, type StreamContext } from './adsStream.js';
import type { DiscoveryRequest, DiscoveryResponse } from './messages.js';
import { TypeProgress } from './streamStatus.js';

class SotwProgress extends TypeProgress {
  names: ReadonlySet<string> | 'wildcard' = new Set();
  /** The first request of the type named nothing: the legacy wildcard, which an empty list keeps. */
  legacyWildcard = false;
  answeredNames: ReadonlySet<string> = new Set();
}

/**
 * One StreamAggregatedResources call: a subscription and a watch per type, a response whenever the
 * cache answers a watch, a new watch once the client has answered (ACK or NACK) the response.
 */
export class SotwStream extends AdsStream<SotwProgress> {
  constructor(
    context: StreamContext,
    private readonly write: (response: DiscoveryResponse) => void,
  ) {
    super(context, 'sotw');
  }

  /** Handles one request; throws AdsStreamError when the stream must end. */
  onRequest(request: DiscoveryRequest): void {
    if (this.closed) return;
    const who = this.identify(request);
    if (!who) return;
    const { node, group, typeUrl } = who;
    let progress = this.types.get(typeUrl);
    if (!progress) {
      progress = new SotwProgress(typeUrl);
      progress.legacyWildcard = request.resourceNames.length === 0;
      this.types.set(typeUrl, progress);
    }
    const answer = this.answer(progress, request, node);
    if (answer === 'stale') {
      // The client had not seen the last response yet; it answers that one next, with its subscription.
      this.context.log.debug({ stream: this.context.id, typeUrl, nonce: request.responseNonce, current: progress.nonce }, 'stale nonce: request dropped');
      return;
    }
    const names = request.resourceNames;
    progress.names = names.includes('*') || (names.length === 0 && progress.legacyWildcard) ? 'wildcard' : new Set(names);
    progress.cancel?.();
    progress.cancel = undefined;
    this.#watch(group, node, progress);
  }

  #watch(group: string, node: XdsNode, progress: SotwProgress): void {
    let answered = false;
    const cancel = this.context.watcher.watchSotw(
      group,
      { typeUrl: progress.typeUrl, names: progress.names, sentVersion: progress.sentVersion, answeredNames: progress.answeredNames },
      (response) => {
        answered = true;
        progress.cancel = undefined;
        this.#send(node, progress, response);
      },
    );
    if (!answered) progress.cancel = cancel;
  }

  #send(node: XdsNode, progress: SotwProgress, response: SotwResponse): void {
    if (this.closed) return;
    const nonce = this.nextNonce();
    progress.sent(nonce, response.version, this.context.now());
    progress.answeredNames = response.answered;
    this.write({
      versionInfo: response.version,
      resources: response.resources.map((r) => ({ typeUrl: r.typeUrl, value: r.body })),
      typeUrl: response.typeUrl,
      nonce,
      controlPlane: this.context.controlPlane,
    });
    this.context.observer.pushed?.({ node, typeUrl: progress.typeUrl, version: response.version, nonce, resources: response.resources.length });
  }
}
