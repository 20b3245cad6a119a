import { topics, type Bus } from '@paddock/bus';
import type { PortChanged, PortListener } from '@paddock/proto';
import type { PortUrls } from './portUrls.js';
import type { PortVisibility, VisibilityMap } from './portVisibilityStore.js';

/** A port open in an instance, as the API shows it. */
export interface PortView {
  port: number;
  protocol: 'tcp';
  /** The widest address a socket listens on ("0.0.0.0" before "127.0.0.1"), as portdetect reports it. */
  address: string;
  /** Where the ingress serves it; null when the gateway runs no ingress. */
  url: string | null;
  visibility: PortVisibility;
  openedAt: string;
}

/** The JSON schema of a PortView, for the routes' answers and the OpenAPI document. */
export const portViewSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['port', 'protocol', 'address', 'url', 'visibility', 'openedAt'],
  properties: {
    port: { type: 'integer', minimum: 1, maximum: 65535 },
    protocol: { type: 'string', enum: ['tcp'] },
    address: { type: 'string', description: 'the address the server is bound to inside the instance: 0.0.0.0, ::, 127.0.0.1, …' },
    url: { type: 'string', nullable: true, description: 'http://{id}-{port}.{BASE_DOMAIN}:{ingress port}/; null when the gateway runs no ingress' },
    visibility: { type: 'string', enum: ['private', 'project', 'public'] },
    openedAt: { type: 'string', format: 'date-time' },
  },
} as const;

/**
 * The last port event of an instance: portdetect publishes each change as `.opened` or `.closed` with a
 * sequence number that grows per instance, and every event carries all the ports open after it, so the
 * later of the two last ones is the instance's whole state. Null when portdetect has said nothing of it.
 */
export async function lastPortEvent(bus: Bus, instanceId: string): Promise<PortChanged | null> {
  const [opened, closed] = await Promise.all([bus.lastStored(topics.portOpened, instanceId), bus.lastStored(topics.portClosed, instanceId)]);
  if (!opened) return closed?.message ?? null;
  if (!closed) return opened.message;
  return opened.message.seq >= closed.message.seq ? opened.message : closed.message;
}

/** The ports an event says are open, as the API shows them. */
export function portViews(instanceId: string, event: PortChanged | null, visibility: VisibilityMap, urls: PortUrls): PortView[] {
  if (!event || event.instanceEnded) return [];
  return event.open.map((listener) => portView(instanceId, listener, visibility, urls));
}

function portView(instanceId: string, listener: PortListener, visibility: VisibilityMap, urls: PortUrls): PortView {
  return {
    port: listener.port,
    protocol: 'tcp',
    address: listener.address,
    url: urls.of(instanceId, listener.port),
    visibility: visibility.get(listener.port) ?? 'private',
    openedAt: new Date(listener.openedAtMs).toISOString(),
  };
}
