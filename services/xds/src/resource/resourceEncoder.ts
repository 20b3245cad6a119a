import protobuf from 'protobufjs';
import { cachedResource, type CachedResource } from '../cache/snapshot.js';
import type { EnvoyProtos } from '../protos/envoyProtos.js';
import { fieldByJsonKey, fromProtoJson, ProtoJsonError, type JsonObject } from '../protos/protoJson.js';
import { Generations } from './generations.js';
import type { ResourceJson } from './resourceJson.js';
import { messageTypeOf } from './typeUrls.js';

/**
 * Encodes resources from their proto3 JSON, strictly (ProtoJsonError for anything their message does not
 * have), and keeps what it encoded for the next snapshot: a resource whose JSON is the same as before is
 * not encoded again, and an itemized one (the route configuration, one virtual host per open port) is
 * encoded item by item, each item's record kept with the item object itself, so a change re-encodes only
 * the items it made anew (the builders give the same object for an unchanged item: see VirtualHosts).
 * The bytes are those protobufjs writes for the whole message: fields in number order, each item of a
 * repeated field a length-delimited record of its own.
 *
 * As go-control-plane's cache keeps resources per type between versions; what is kept is keyed by the
 * content itself (a resource's JSON, or an item object, which no builder changes once made), so nothing
 * needs to say what changed.
 */
export class ResourceEncoder {
  readonly #resources = new Generations<CachedResource>();
  /** By item object: gone with the object once no snapshot holds it. */
  readonly #items = new WeakMap<object, Uint8Array>();

  constructor(private readonly protos: EnvoyProtos) {}

  /** Starts the encoding of a new snapshot. */
  nextBuild(): void {
    this.#resources.next();
  }

  encode(resource: ResourceJson): CachedResource {
    const { name, typeUrl, json, references, itemized } = resource;
    if (itemized !== undefined) return cachedResource({ name, typeUrl, json, references, body: this.#itemizedBody(messageTypeOf(typeUrl), json, itemized) });
    return this.#resources.get(`${typeUrl}\n${JSON.stringify(json)}`, () => cachedResource({ name, typeUrl, json, references, body: this.protos.encodeJson(messageTypeOf(typeUrl), json) }));
  }

  #itemizedBody(typeName: string, json: JsonObject, fieldName: string): Uint8Array {
    const type = this.protos.type(typeName);
    const field = type.fields[fieldName];
    const itemType = field?.resolvedType;
    if (!field || !field.repeated || !(itemType instanceof protobuf.Type)) throw new Error(`${typeName}.${fieldName} is not a repeated message field`);
    const items = json[fieldName] ?? [];
    if (!Array.isArray(items)) throw new ProtoJsonError(typeName, fieldName, 'expected an array');
    // The other fields, split around the itemized one, so that the fields stay in number order.
    const before: JsonObject = {};
    const after: JsonObject = {};
    for (const [key, value] of Object.entries(json)) {
      if (key === fieldName) continue;
      const id = fieldByJsonKey(type, key)?.id ?? 0;
      (id > field.id ? after : before)[key] = value;
    }
    const parts: Uint8Array[] = [this.protos.encodeJson(typeName, before)];
    const tag = (field.id << 3) | 2;
    items.forEach((item, i) => {
      const held = typeof item === 'object' && item !== null ? this.#items.get(item) : undefined;
      if (held) return void parts.push(held);
      const message = itemType.encode(itemType.fromObject(fromProtoJson(itemType, item, `${fieldName}[${i}]`))).finish();
      const record = protobuf.Writer.create().uint32(tag).bytes(message).finish();
      if (typeof item === 'object' && item !== null) this.#items.set(item, record);
      parts.push(record);
    });
    if (Object.keys(after).length > 0) parts.push(this.protos.encodeJson(typeName, after));
    return Buffer.concat(parts);
  }
}
