import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join } from 'node:path';
import protobuf from 'protobufjs';
import { encodeProtoJson } from './protoJson.js';

const require = createRequire(import.meta.url);

/**
 * The Envoy API files Paddock reads and writes: ADS itself and every message its resources contain (a
 * typed_config names one of these, or the encoder refuses it as unknown).
 */
export const ENVOY_PROTO_FILES: readonly string[] = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
];

/**
 * Where Envoy's protos (and those they import: xds, googleapis, protoc-gen-validate) are: the copies that
 * @grpc/grpc-js-xds ships for its own client, so the control plane and the client it is tested against
 * read the same definitions.
 */
export function envoyProtoDirs(): string[] {
  const deps = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  return ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((dir) => join(deps, dir));
}

/** How decoded messages look: field names as in the .proto, enums by name, 64-bit integers as strings, bytes as Uint8Array. */
const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: String, defaults: true, oneofs: true };

/** Envoy's message types, for encoding resources from proto3 JSON and decoding what clients send. */
export class EnvoyProtos {
  constructor(readonly root: protobuf.Root) {}

  /** The message type `name` (e.g. `envoy.config.listener.v3.Listener`); throws when it is not loaded. */
  type(name: string): protobuf.Type {
    return this.root.lookupType(name);
  }

  /** Proto3 JSON of `typeName` in its binary encoding; throws ProtoJsonError for anything that does not fit. */
  encodeJson(typeName: string, json: unknown): Uint8Array {
    return encodeProtoJson(this.type(typeName), json);
  }

  /** A binary message as a plain object (see TO_OBJECT): how the server reads requests and clients read resources. */
  decode(typeName: string, bytes: Uint8Array): Record<string, unknown> {
    const type = this.type(typeName);
    return type.toObject(type.decode(bytes), TO_OBJECT);
  }

  /** A plain object (as `decode` gives, or with camelCase-free field names) in its binary encoding. */
  encodeObject(typeName: string, object: Record<string, unknown>): Uint8Array {
    const type = this.type(typeName);
    return type.encode(type.fromObject(object)).finish();
  }
}

let loaded: EnvoyProtos | undefined;

/**
 * Envoy's protos, parsed once per process (about 150 ms). Field names keep the .proto's spelling
 * (`keepCase`), as Envoy's documentation and proto3 JSON's original names do.
 */
export function loadEnvoyProtos(): EnvoyProtos {
  if (loaded) return loaded;
  // Envoy's protos import descriptor.proto for their options; protobufjs bundles it but does not register it.
  protobuf.common('descriptor', (require('protobufjs/google/protobuf/descriptor.json') as { nested: { google: { nested: { protobuf: { nested: protobuf.INamespace } } } } }).nested.google.nested.protobuf.nested);
  const dirs = envoyProtoDirs();
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    if (isAbsolute(target)) return target;
    for (const dir of dirs) {
      const candidate = join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    // Bundled files (google/protobuf/*) are looked up by this name; anything else fails to load, naming it.
    return target;
  };
  root.loadSync([...ENVOY_PROTO_FILES], { keepCase: true });
  root.resolveAll();
  loaded = new EnvoyProtos(root);
  return loaded;
}
