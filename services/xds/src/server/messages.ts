import type { ServiceDefinition } from '@grpc/grpc-js';
import type { XdsNode } from '../cache/watch.js';
import type { EnvoyProtos } from '../protos/envoyProtos.js';

/** An Any as it travels: the type URL and the message's bytes. */
export interface AnyMessage {
  readonly typeUrl: string;
  readonly value: Uint8Array;
}

/** A client's error_detail (google.rpc.Status): present on a NACK. */
export interface ErrorDetail {
  readonly code: number;
  readonly message: string;
}

/** envoy.service.discovery.v3.DiscoveryRequest, the fields ADS uses. */
export interface DiscoveryRequest {
  readonly versionInfo: string;
  readonly node: XdsNode | null;
  readonly resourceNames: readonly string[];
  readonly typeUrl: string;
  readonly responseNonce: string;
  readonly errorDetail: ErrorDetail | null;
}

export interface DiscoveryResponse {
  readonly versionInfo: string;
  readonly resources: readonly AnyMessage[];
  readonly typeUrl: string;
  readonly nonce: string;
  /** Who answered (control_plane.identifier). */
  readonly controlPlane: string;
}

export interface DeltaDiscoveryRequest {
  readonly node: XdsNode | null;
  readonly typeUrl: string;
  readonly resourceNamesSubscribe: readonly string[];
  readonly resourceNamesUnsubscribe: readonly string[];
  /** Only on a stream's first request of a type: what the client already has (from an earlier stream). */
  readonly initialResourceVersions: Readonly<Record<string, string>>;
  readonly responseNonce: string;
  readonly errorDetail: ErrorDetail | null;
}

export interface DeltaResource {
  readonly name: string;
  readonly version: string;
  readonly resource: AnyMessage;
}

export interface DeltaDiscoveryResponse {
  readonly systemVersionInfo: string;
  readonly resources: readonly DeltaResource[];
  readonly typeUrl: string;
  readonly removedResources: readonly string[];
  readonly nonce: string;
  readonly controlPlane: string;
}

const PACKAGE = 'envoy.service.discovery.v3';

type Plain = Record<string, unknown>;

function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

function nodeOf(value: unknown): XdsNode | null {
  if (!value || typeof value !== 'object') return null;
  const n = value as Plain;
  return { id: str(n['id']), cluster: str(n['cluster']), userAgentName: str(n['user_agent_name']) };
}

function errorOf(value: unknown): ErrorDetail | null {
  if (!value || typeof value !== 'object') return null;
  const e = value as Plain;
  return { code: typeof e['code'] === 'number' ? e['code'] : 0, message: str(e['message']) };
}

function nodeObject(node: XdsNode | null): Plain | null {
  return node ? { id: node.id, cluster: node.cluster, user_agent_name: node.userAgentName } : null;
}

function anyObject(a: AnyMessage): Plain {
  return { type_url: a.typeUrl, value: a.value };
}

function anyOf(value: unknown): AnyMessage {
  const a = (value ?? {}) as Plain;
  return { typeUrl: str(a['type_url']), value: a['value'] instanceof Uint8Array ? a['value'] : new Uint8Array() };
}

/** The messages of ADS in their binary form and as the types above. */
export class AdsCodec {
  constructor(private readonly protos: EnvoyProtos) {}

  decodeRequest(bytes: Uint8Array): DiscoveryRequest {
    const m = this.protos.decode(`${PACKAGE}.DiscoveryRequest`, bytes);
    return {
      versionInfo: str(m['version_info']),
      node: nodeOf(m['node']),
      resourceNames: strings(m['resource_names']),
      typeUrl: str(m['type_url']),
      responseNonce: str(m['response_nonce']),
      errorDetail: errorOf(m['error_detail']),
    };
  }

  encodeRequest(r: DiscoveryRequest): Uint8Array {
    return this.protos.encodeObject(`${PACKAGE}.DiscoveryRequest`, {
      version_info: r.versionInfo,
      node: nodeObject(r.node),
      resource_names: [...r.resourceNames],
      type_url: r.typeUrl,
      response_nonce: r.responseNonce,
      error_detail: r.errorDetail,
    });
  }

  decodeResponse(bytes: Uint8Array): DiscoveryResponse {
    const m = this.protos.decode(`${PACKAGE}.DiscoveryResponse`, bytes);
    return {
      versionInfo: str(m['version_info']),
      resources: (Array.isArray(m['resources']) ? m['resources'] : []).map(anyOf),
      typeUrl: str(m['type_url']),
      nonce: str(m['nonce']),
      controlPlane: str((m['control_plane'] as Plain | null)?.['identifier']),
    };
  }

  encodeResponse(r: DiscoveryResponse): Uint8Array {
    return this.protos.encodeObject(`${PACKAGE}.DiscoveryResponse`, {
      version_info: r.versionInfo,
      resources: r.resources.map(anyObject),
      type_url: r.typeUrl,
      nonce: r.nonce,
      control_plane: { identifier: r.controlPlane },
    });
  }

  decodeDeltaRequest(bytes: Uint8Array): DeltaDiscoveryRequest {
    const m = this.protos.decode(`${PACKAGE}.DeltaDiscoveryRequest`, bytes);
    const initial = (m['initial_resource_versions'] ?? {}) as Record<string, unknown>;
    return {
      node: nodeOf(m['node']),
      typeUrl: str(m['type_url']),
      resourceNamesSubscribe: strings(m['resource_names_subscribe']),
      resourceNamesUnsubscribe: strings(m['resource_names_unsubscribe']),
      initialResourceVersions: Object.fromEntries(Object.entries(initial).map(([k, v]) => [k, str(v)])),
      responseNonce: str(m['response_nonce']),
      errorDetail: errorOf(m['error_detail']),
    };
  }

  encodeDeltaRequest(r: DeltaDiscoveryRequest): Uint8Array {
    return this.protos.encodeObject(`${PACKAGE}.DeltaDiscoveryRequest`, {
      node: nodeObject(r.node),
      type_url: r.typeUrl,
      resource_names_subscribe: [...r.resourceNamesSubscribe],
      resource_names_unsubscribe: [...r.resourceNamesUnsubscribe],
      initial_resource_versions: { ...r.initialResourceVersions },
      response_nonce: r.responseNonce,
      error_detail: r.errorDetail,
    });
  }

  decodeDeltaResponse(bytes: Uint8Array): DeltaDiscoveryResponse {
    const m = this.protos.decode(`${PACKAGE}.DeltaDiscoveryResponse`, bytes);
    const resources = (Array.isArray(m['resources']) ? m['resources'] : []) as Plain[];
    return {
      systemVersionInfo: str(m['system_version_info']),
      resources: resources.map((r) => ({ name: str(r['name']), version: str(r['version']), resource: anyOf(r['resource']) })),
      typeUrl: str(m['type_url']),
      removedResources: strings(m['removed_resources']),
      nonce: str(m['nonce']),
      controlPlane: str((m['control_plane'] as Plain | null)?.['identifier']),
    };
  }

  encodeDeltaResponse(r: DeltaDiscoveryResponse): Uint8Array {
    return this.protos.encodeObject(`${PACKAGE}.DeltaDiscoveryResponse`, {
      system_version_info: r.systemVersionInfo,
      resources: r.resources.map((d) => ({ name: d.name, version: d.version, resource: anyObject(d.resource) })),
      type_url: r.typeUrl,
      removed_resources: [...r.removedResources],
      nonce: r.nonce,
      control_plane: { identifier: r.controlPlane },
    });
  }

  /** The AggregatedDiscoveryService as grpc-js serves and calls it, with the types above. */
  serviceDefinition(): ServiceDefinition {
    const path = (method: string): string => `/${PACKAGE}.AggregatedDiscoveryService/${method}`;
    return {
      StreamAggregatedResources: {
        path: path('StreamAggregatedResources'),
        requestStream: true,
        responseStream: true,
        requestSerialize: (r: DiscoveryRequest) => Buffer.from(this.encodeRequest(r)),
        requestDeserialize: (b: Buffer) => this.decodeRequest(b),
        responseSerialize: (r: DiscoveryResponse) => Buffer.from(this.encodeResponse(r)),
        responseDeserialize: (b: Buffer) => this.decodeResponse(b),
        originalName: 'streamAggregatedResources',
      },
      DeltaAggregatedResources: {
        path: path('DeltaAggregatedResources'),
        requestStream: true,
        responseStream: true,
        requestSerialize: (r: DeltaDiscoveryRequest) => Buffer.from(this.encodeDeltaRequest(r)),
        requestDeserialize: (b: Buffer) => this.decodeDeltaRequest(b),
        responseSerialize: (r: DeltaDiscoveryResponse) => Buffer.from(this.encodeDeltaResponse(r)),
        responseDeserialize: (b: Buffer) => this.decodeDeltaResponse(b),
        originalName: 'deltaAggregatedResources',
      },
    };
  }
}
