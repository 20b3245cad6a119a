import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { createFileRegistry, fromBinary, fromJson, toJson, type DescMessage, type JsonValue, type Registry } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { parse as parseYaml } from 'yaml';
import { SnapshotCache } from '../src/cache/snapshotCache.js';
import type { XdsNode } from '../src/cache/watch.js';
import { envoyProtoDirs } from '../src/protos/envoyProtos.js';
import type { EdgeProxyOptions } from '../src/resource/edge.js';
import { EDGE_AUTHZ_HEADERS, EDGE_AUTHZ_PATH_PREFIX, EDGE_LISTENER, GATEWAY_CLUSTER, NODE_GROUPS, nodeGroupOf, RELAY_HEADERS, relayCluster } from '../src/resource/names.js';
import type { PaddockState } from '../src/resource/paddockState.js';
import { buildSnapshots } from '../src/resource/snapshots.js';
import { messageTypeOf, PUSH_ORDER, TYPE_URLS, type TypeUrl } from '../src/resource/typeUrls.js';
import { startAdsServer, type StartedAdsServer } from '../src/server/adsServer.js';
import type { DiscoveryResponse } from '../src/server/messages.js';
import { adsClient, EDGE_NODE, GRPC_NODE, INGRESS_NODE, log, protos, sotwRequest } from './support.js';

const run = promisify(execFile);
const require = createRequire(import.meta.url);
const BOOTSTRAP = fileURLToPath(new URL('../../../../envoy/bootstrap.yaml', import.meta.url));

/**
 * The vendored protoc-gen-validate predates StringRules.ignore_empty, which Envoy's protos use: a copy with
 * the field added (number 26, as upstream has it) lets them compile. node_modules is never touched.
 */
async function patchedValidateProto(original: string): Promise<string> {
  const text = await readFile(original, 'utf8');
  const anchor = /^( *)optional bool strict = 25 \[default = true\];$/m;
  assert.match(text, anchor, 'validate.proto changed: the patch for StringRules.ignore_empty needs a new anchor');
  assert.doesNotMatch(text, /ignore_empty/, 'validate.proto has ignore_empty now: drop the patch');
  return text.replace(anchor, (line, indent: string) => `${line}\n${indent}optional bool ignore_empty = 26;`);
}

async function protoFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith('.proto')).map((e) => join(e.parentPath, e.name));
}

/**
 * A registry of every Envoy v3 message, compiled by buf from the protos @grpc/grpc-js-xds ships. Files
 * whose imports are not shipped (OpenCensus, OpenTelemetry, Prometheus) are left out, with what imports
 * them; buf supplies google/protobuf's well-known types.
 */
async function envoyRegistry(work: string): Promise<Registry> {
  const [envoyApi, xds, googleapis, pgv] = envoyProtoDirs() as [string, string, string, string];
  const roots = { 'envoy-api': envoyApi, xds, googleapis, pgv: join(work, 'pgv') };
  for (const [name, dir] of Object.entries(roots)) if (name !== 'pgv') await cp(dir, join(work, name), { recursive: true });
  await mkdir(join(work, 'pgv', 'validate'), { recursive: true });
  await writeFile(join(work, 'pgv', 'validate', 'validate.proto'), await patchedValidateProto(join(pgv, 'validate', 'validate.proto')));
  await writeFile(join(work, 'buf.yaml'), `version: v2\nmodules:\n${Object.keys(roots).map((m) => `  - path: ${m}\n`).join('')}`);

  const located = new Map<string, string | null>();
  const locate = (importPath: string): string | null => {
    if (!located.has(importPath)) {
      const found = Object.keys(roots).map((m) => join(work, m, importPath)).find((p) => existsSync(p));
      located.set(importPath, found ?? null);
    }
    return located.get(importPath) ?? null;
  };
  const compiles = new Map<string, Promise<boolean>>();
  const compilable = (file: string): Promise<boolean> => {
    let known = compiles.get(file);
    if (!known) {
      known = (async () => {
        const text = await readFile(file, 'utf8');
        for (const [, imported] of text.matchAll(/^import\s+(?:public\s+|weak\s+)?"([^"]+)";/gm)) {
          if (imported?.startsWith('google/protobuf/')) continue;
          const found = imported ? locate(imported) : null;
          if (!found || !(await compilable(found))) return false;
        }
        return true;
      })();
      compiles.set(file, known);
    }
    return known;
  };
  const candidates = (await protoFiles(join(work, 'envoy-api', 'envoy'))).filter((f) => /[/\\]v3[/\\]/.test(f));
  const paths: string[] = [];
  for (const f of candidates) if (await compilable(f)) paths.push(relative(work, f));
  assert.ok(paths.length > 300, `only ${paths.length} of Envoy's v3 files can be compiled`);
  const buf = join(dirname(require.resolve('@bufbuild/buf/package.json')), 'bin', 'buf');
  const image = join(work, 'envoy.binpb');
  await run(process.execPath, [buf, 'build', '-o', image, ...paths.flatMap((p) => ['--path', p])], {
    cwd: work,
    env: { ...process.env, BUF_CACHE_DIR: join(work, '.cache') },
    maxBuffer: 16 * 1024 * 1024,
  });
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, await readFile(image)));
}

/** The parts of envoy/bootstrap.yaml the tests read. */
interface BootstrapJson {
  node: { cluster: string };
  dynamic_resources: {
    ads_config: { api_type: string; transport_api_version: string; grpc_services: { envoy_grpc: { cluster_name: string } }[] };
    lds_config: unknown;
    cds_config: unknown;
  };
  static_resources: {
    clusters: {
      name: string;
      connect_timeout: string;
      load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: unknown } } }[] }[] };
      typed_extension_protocol_options: Record<string, { explicit_http_config?: { http2_protocol_options?: unknown } }>;
    }[];
  };
  admin: { address: { socket_address: { address: string } } };
  overload_manager: { resource_monitors: { typed_config: Record<string, unknown> }[] };
}

function schema(registry: Registry, typeName: string): DescMessage {
  const desc = registry.getMessage(typeName);
  assert.ok(desc, `${typeName} is not in the registry`);
  return desc;
}

let work: string;
let registry: Registry;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'paddock-xds-validate-'));
  registry = await envoyRegistry(work);
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

test('envoy/bootstrap.yaml is an Envoy v3 Bootstrap that takes everything from ADS at 127.0.0.1:18000', async () => {
  const json = parseYaml(await readFile(BOOTSTRAP, 'utf8')) as JsonValue;
  const bootstrapType = schema(registry, 'envoy.config.bootstrap.v3.Bootstrap');
  const bootstrap = toJson(bootstrapType, fromJson(bootstrapType, json, { registry }), { registry, useProtoFieldName: true }) as unknown as BootstrapJson;
  assert.equal(bootstrap.node.cluster, NODE_GROUPS.edge);
  const ads = bootstrap.dynamic_resources.ads_config;
  assert.deepEqual([ads.api_type, ads.transport_api_version], ['GRPC', 'V3']);
  assert.deepEqual(bootstrap.dynamic_resources.lds_config, { ads: {}, resource_api_version: 'V3' });
  assert.deepEqual(bootstrap.dynamic_resources.cds_config, { ads: {}, resource_api_version: 'V3' });
  const xdsCluster = bootstrap.static_resources.clusters.find((c) => c.name === ads.grpc_services[0]?.envoy_grpc.cluster_name);
  assert.ok(xdsCluster, 'the ADS cluster is defined statically');
  assert.deepEqual(xdsCluster.load_assignment.endpoints[0]?.lb_endpoints[0]?.endpoint.address.socket_address, { address: '127.0.0.1', port_value: 18000 });
  assert.ok(xdsCluster.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']?.explicit_http_config?.http2_protocol_options, 'ADS is gRPC: HTTP/2');
  assert.equal(bootstrap.admin.address.socket_address.address, '127.0.0.1', 'admin on loopback only');
});

test('the check itself refuses an unknown field, a bad duration and an unknown type', async () => {
  const bootstrapType = schema(registry, 'envoy.config.bootstrap.v3.Bootstrap');
  const json = parseYaml(await readFile(BOOTSTRAP, 'utf8')) as BootstrapJson;
  const mutate = (change: (j: BootstrapJson) => void): JsonValue => {
    const copy = structuredClone(json);
    change(copy);
    return copy as unknown as JsonValue;
  };
  assert.doesNotThrow(() => fromJson(bootstrapType, mutate(() => {}), { registry }));
  assert.throws(
    () => fromJson(bootstrapType, mutate((j) => Object.assign(j.dynamic_resources, { lds_confg: j.dynamic_resources.lds_config })), { registry }),
    /lds_confg/,
  );
  assert.throws(
    () =>
      fromJson(
        bootstrapType,
        mutate((j) => {
          for (const c of j.static_resources.clusters) c.connect_timeout = '1 s';
        }),
        { registry },
      ),
    /connect_timeout|Duration/,
  );
  assert.throws(
    () =>
      fromJson(
        bootstrapType,
        mutate((j) => {
          for (const m of j.overload_manager.resource_monitors) m.typed_config['@type'] = 'type.googleapis.com/envoy.Nope';
        }),
        { registry },
      ),
    /envoy.Nope/,
  );
});

/** What a node of `node`'s group is sent: every listener and cluster, then every route and load assignment they name. */
async function everythingServedTo(server: StartedAdsServer, node: XdsNode, cache: SnapshotCache): Promise<DiscoveryResponse[]> {
  const snapshot = cache.snapshot(nodeGroupOf(node));
  assert.ok(snapshot);
  const client = adsClient(server.address);
  try {
    const stream = client.sotw();
    const responses: DiscoveryResponse[] = [];
    let first = true;
    for (const typeUrl of PUSH_ORDER) {
      const byName = typeUrl === TYPE_URLS.routeConfiguration || typeUrl === TYPE_URLS.loadAssignment;
      stream.send(sotwRequest(typeUrl, { node: first ? node : null, resourceNames: byName ? [...snapshot.resources(typeUrl).keys()] : [] }));
      first = false;
      responses.push(await stream.next());
    }
    return responses;
  } finally {
    client.close();
  }
}

const EDGE_PROXY: EdgeProxyOptions = {
  relayTls: { caFile: '/etc/paddock/plane/ca.crt', certFile: '/etc/paddock/plane/edge.crt', keyFile: '/etc/paddock/plane/edge.key' },
  authz: { host: '127.0.0.1', port: 8081 },
  listenerTls: { certFile: '/etc/envoy/wildcard.crt', keyFile: '/etc/envoy/wildcard.key' },
};

const STATE: PaddockState = {
  brokers: new Map([
    ['b1', { id: 'b1', grpc: { host: '127.0.0.1', port: 7001 }, relay: { host: '127.0.0.1', port: 7101 } }],
    ['b2', { id: 'b2', grpc: { host: '::1', port: 7002 }, relay: null }],
  ]),
  instances: new Map([
    ['i1', { id: 'i1', brokerId: 'b1', ports: new Map([[3000, { port: 3000, visibility: 'private' as const }], [8080, { port: 8080, visibility: 'public' as const }]]) }],
    ['i2', { id: 'i2', brokerId: 'b2', ports: new Map() }],
    ['i3', { id: 'i3', brokerId: 'gone', ports: new Map([[5000, { port: 5000, visibility: 'private' as const }]]) }],
  ]),
};

test('every resource served to each node group is valid Envoy JSON, and the bytes served are exactly that JSON', async () => {
  const cache = new SnapshotCache(nodeGroupOf);
  for (const [group, snapshot] of buildSnapshots(STATE, { baseDomain: 'paddock.example.com', edgeListen: { host: '0.0.0.0', port: 8080 }, edgeProxy: EDGE_PROXY }, protos)) {
    cache.setSnapshot(group, snapshot);
  }
  const server = await startAdsServer({ host: '127.0.0.1', port: 0, watcher: cache, protos, log });
  try {
    let checked = 0;
    for (const node of [EDGE_NODE, INGRESS_NODE, GRPC_NODE]) {
      const snapshot = cache.snapshot(nodeGroupOf(node))!;
      for (const response of await everythingServedTo(server, node, cache)) {
        const typeUrl = response.typeUrl as TypeUrl;
        const served = new Map(response.resources.map((r) => [protos.decode(messageTypeOf(typeUrl), r.value), r] as const));
        assert.equal(served.size, snapshot.resources(typeUrl).size, `${node.cluster}: every ${typeUrl} is served`);
        const desc = schema(registry, messageTypeOf(typeUrl));
        for (const [decoded, any] of served) {
          assert.equal(any.typeUrl, typeUrl);
          const name = (decoded['name'] ?? decoded['cluster_name']) as string;
          const cached = snapshot.resources(typeUrl).get(name);
          assert.ok(cached, `${name} is in the snapshot`);
          // Strict: fromJson throws on an unknown field, a bad duration, an unknown @type or enum.
          const fromSource = toJson(desc, fromJson(desc, cached.json as JsonValue, { registry }), { registry });
          const fromWire = toJson(desc, fromBinary(desc, any.value), { registry });
          assert.deepEqual(fromWire, fromSource, `${node.cluster} ${typeUrl} ${name}: the bytes served are its JSON`);
          checked++;
        }
      }
    }
    assert.ok(checked >= 19, `checked ${checked} resources`);
  } finally {
    await server.stop(200);
  }
});

/** A served resource of the edge group, as buf's decoder reads it (typed_configs unpacked, proto field names). */
function edgeResource(typeUrl: TypeUrl, name: string, edgeProxy: EdgeProxyOptions = EDGE_PROXY): Record<string, unknown> {
  const snapshot = buildSnapshots(STATE, { baseDomain: 'paddock.example.com', edgeListen: { host: '0.0.0.0', port: 8443 }, edgeProxy }, protos).get(NODE_GROUPS.edge)!;
  const cached = snapshot.resources(typeUrl).get(name);
  assert.ok(cached, `${name} is served to Envoy`);
  const desc = schema(registry, messageTypeOf(typeUrl));
  return toJson(desc, fromBinary(desc, cached.body), { registry, useProtoFieldName: true }) as Record<string, unknown>;
}

test("Envoy's listener asks the gateway first (ext_authz, then the router), over TLS when given a certificate", () => {
  const listener = edgeResource(TYPE_URLS.listener, EDGE_LISTENER) as {
    filter_chains: { filters: { typed_config: { http_filters: { name: string; typed_config: Record<string, unknown> }[] } }[]; transport_socket?: { typed_config: Record<string, unknown> } }[];
  };
  const [chain] = listener.filter_chains;
  const filters = chain!.filters[0]!.typed_config.http_filters;
  assert.deepEqual(filters.map((f) => f.name), ['envoy.filters.http.ext_authz', 'envoy.filters.http.router']);
  const authz = filters[0]!.typed_config as {
    http_service: { server_uri: { uri: string; cluster: string; timeout: string }; path_prefix: string; authorization_request: { headers_to_add: { key: string; value: string }[] }; authorization_response: { allowed_upstream_headers: { patterns: { exact: string }[] } } };
    allowed_headers: { patterns: { exact: string }[] };
    status_on_error: { code: string };
  };
  assert.deepEqual(authz.http_service.server_uri, { uri: 'http://127.0.0.1:8081', cluster: GATEWAY_CLUSTER, timeout: '5s' });
  assert.equal(authz.http_service.path_prefix, EDGE_AUTHZ_PATH_PREFIX);
  assert.deepEqual(authz.http_service.authorization_request.headers_to_add, [{ key: EDGE_AUTHZ_HEADERS.upgrade, value: '%REQ(upgrade)%' }]);
  assert.deepEqual(
    authz.http_service.authorization_response.allowed_upstream_headers.patterns.map((p) => p.exact),
    [RELAY_HEADERS.instanceId, RELAY_HEADERS.port, RELAY_HEADERS.path, 'cookie'],
  );
  assert.deepEqual(authz.allowed_headers.patterns.map((p) => p.exact), ['cookie', 'accept']);
  assert.equal(authz.status_on_error.code, 'ServiceUnavailable');
  const tls = chain!.transport_socket?.typed_config as { common_tls_context: { tls_certificates: { certificate_chain: { filename: string } }[] } } | undefined;
  assert.equal(tls?.common_tls_context.tls_certificates[0]?.certificate_chain.filename, '/etc/envoy/wildcard.crt');
  const plain = edgeResource(TYPE_URLS.listener, EDGE_LISTENER, { ...EDGE_PROXY, listenerTls: null }) as { filter_chains: { transport_socket?: unknown }[] };
  assert.equal(plain.filter_chains[0]?.transport_socket, undefined, 'plain HTTP without a certificate');
});

test("Envoy reaches a broker's relay over mutual TLS with the edge's certificate, accepting only a broker; the gateway by address or by name", () => {
  const relay = edgeResource(TYPE_URLS.cluster, relayCluster('b1')) as {
    transport_socket: {
      typed_config: {
        common_tls_context: {
          tls_certificates: { certificate_chain: { filename: string }; private_key: { filename: string } }[];
          validation_context: { trusted_ca: { filename: string }; match_typed_subject_alt_names: { san_type: string; matcher: { exact: string } }[] };
        };
      };
    };
  };
  const context = relay.transport_socket.typed_config.common_tls_context;
  assert.deepEqual(context.tls_certificates, [{ certificate_chain: { filename: '/etc/paddock/plane/edge.crt' }, private_key: { filename: '/etc/paddock/plane/edge.key' } }]);
  assert.equal(context.validation_context.trusted_ca.filename, '/etc/paddock/plane/ca.crt');
  assert.deepEqual(context.validation_context.match_typed_subject_alt_names, [{ san_type: 'URI', matcher: { exact: 'spiffe://paddock/broker' } }]);
  const endpoints = edgeResource(TYPE_URLS.loadAssignment, relayCluster('b1')) as { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: unknown } } }[] }[] };
  assert.deepEqual(endpoints.endpoints[0]?.lb_endpoints[0]?.endpoint.address.socket_address, { address: '127.0.0.1', port_value: 7101 }, "the broker's HTTP relay");
  assert.deepEqual(edgeResource(TYPE_URLS.loadAssignment, relayCluster('b2'))['endpoints'] ?? [], [], 'a broker that announces no relay has no edge endpoint');

  const byAddress = edgeResource(TYPE_URLS.cluster, GATEWAY_CLUSTER) as { type: string; load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: unknown } } }[] }[] } };
  assert.equal(byAddress.type, 'STATIC');
  assert.deepEqual(byAddress.load_assignment.endpoints[0]?.lb_endpoints[0]?.endpoint.address.socket_address, { address: '127.0.0.1', port_value: 8081 });
  const byName = edgeResource(TYPE_URLS.cluster, GATEWAY_CLUSTER, { ...EDGE_PROXY, authz: { host: 'gateway.internal', port: 8080 } });
  assert.equal(byName['type'], 'STRICT_DNS');
});
