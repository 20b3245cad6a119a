import protobuf from 'protobufjs';

/** A JSON value as proto3 JSON writes it. */
export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

/** Proto3 JSON that does not fit its message: `path` says where (`filter_chains[0].filters[0].typed_config`). */
export class ProtoJsonError extends Error {
  constructor(
    readonly typeName: string,
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${typeName}${path ? ` at ${path}` : ''}: ${reason}`);
    this.name = 'ProtoJsonError';
  }
}

const MAX_DURATION_SECONDS = 315_576_000_000;
const WRAPPERS = new Set([
  'google.protobuf.DoubleValue',
  'google.protobuf.FloatValue',
  'google.protobuf.Int64Value',
  'google.protobuf.UInt64Value',
  'google.protobuf.Int32Value',
  'google.protobuf.UInt32Value',
  'google.protobuf.BoolValue',
  'google.protobuf.StringValue',
  'google.protobuf.BytesValue',
]);
/** Types whose JSON is not an object of their fields; inside an Any they sit under "value". */
const SPECIAL_JSON = new Set([
  ...WRAPPERS,
  'google.protobuf.Duration',
  'google.protobuf.Timestamp',
  'google.protobuf.FieldMask',
  'google.protobuf.Struct',
  'google.protobuf.Value',
  'google.protobuf.ListValue',
  'google.protobuf.Any',
]);
const INT32_RANGE: Record<string, readonly [number, number]> = {
  int32: [-(2 ** 31), 2 ** 31 - 1],
  sint32: [-(2 ** 31), 2 ** 31 - 1],
  sfixed32: [-(2 ** 31), 2 ** 31 - 1],
  uint32: [0, 2 ** 32 - 1],
  fixed32: [0, 2 ** 32 - 1],
};
const INT64 = new Set(['int64', 'sint64', 'sfixed64', 'uint64', 'fixed64']);
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

const fullNames = new WeakMap<protobuf.ReflectionObject, string>();

function fullName(type: protobuf.Type | protobuf.Enum): string {
  let name = fullNames.get(type);
  if (name === undefined) {
    name = type.fullName.replace(/^\./, '');
    fullNames.set(type, name);
  }
  return name;
}

function lowerCamel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'string' ? `"${value}"` : typeof value === 'object' ? 'an object' : String(value);
}

/** Per message type, its fields by every key proto3 JSON may spell them with; made once per type. */
const fieldKeys = new WeakMap<protobuf.Type, ReadonlyMap<string, protobuf.Field>>();

/** The field of `type` called `key` in the .proto or in its JSON (lowerCamelCase or json_name) spelling. */
export function fieldByJsonKey(type: protobuf.Type, key: string): protobuf.Field | undefined {
  let keys = fieldKeys.get(type);
  if (keys === undefined) {
    const map = new Map<string, protobuf.Field>();
    // The JSON names first, so that a .proto name that is also another field's JSON name keeps its field.
    for (const f of type.fieldsArray) map.set(jsonNameOf(f), f);
    for (const f of type.fieldsArray) map.set(f.name, f);
    keys = map;
    fieldKeys.set(type, keys);
  }
  return keys.get(key);
}

function jsonNameOf(field: protobuf.Field): string {
  const declared = field.getOption('json_name') as unknown;
  return typeof declared === 'string' ? declared : lowerCamel(field.name);
}

/** protobufjs spells the fields of its bundled well-known types in camelCase, Envoy's as written: find either. */
function fieldOf(type: protobuf.Type, protoName: string): protobuf.Field {
  const field = type.fieldsArray.find((f) => f.name === protoName || f.name === lowerCamel(protoName));
  if (!field) throw new Error(`${fullName(type)} has no field ${protoName}`);
  return field;
}

/**
 * Proto3 JSON (https://protobuf.dev/programming-guides/json/) read strictly against `type`: every key must be
 * a field, durations must be `"1.5s"`, an Any's `@type` must be a type the root knows, an enum must be one of
 * its names, at most one member of a oneof may be set. The result is an object protobufjs's `fromObject`
 * takes without losing anything (its own JSON reading skips unknown keys and knows neither proto3 durations
 * nor wrappers, so it is only given what it reads faithfully).
 */
export function fromProtoJson(type: protobuf.Type, json: unknown, path = ''): Record<string, unknown> {
  const at = (reason: string, where = path): ProtoJsonError => new ProtoJsonError(fullName(type), where, reason);
  const special = specialFromJson(type, json, path);
  if (special !== undefined) return special;
  if (!isObject(json)) throw at(`expected an object, got ${describe(json)}`);
  const out: Record<string, unknown> = {};
  const oneofSet = new Map<string, string>();
  for (const [key, value] of Object.entries(json)) {
    const where = path ? `${path}.${key}` : key;
    const field = fieldByJsonKey(type, key);
    if (!field) throw at(`unknown field "${key}"`, where);
    if (field.name in out) throw at(`field ${field.name} is given twice`, where);
    // null is the default value, except where null is the value itself (google.protobuf.Value).
    if (value === null && !(field.resolvedType && ['google.protobuf.Value', 'google.protobuf.NullValue'].includes(fullName(field.resolvedType)))) continue;
    const oneof = field.partOf;
    if (oneof) {
      const other = oneofSet.get(oneof.name);
      if (other !== undefined) throw at(`oneof ${oneof.name}: both ${other} and ${field.name} are set`, where);
      oneofSet.set(oneof.name, field.name);
    }
    out[field.name] = fieldFromJson(type, field, value, where);
  }
  return out;
}

function fieldFromJson(type: protobuf.Type, field: protobuf.Field, value: JsonValue, path: string): unknown {
  const at = (reason: string): ProtoJsonError => new ProtoJsonError(fullName(type), path, reason);
  if (field instanceof protobuf.MapField) {
    if (!isObject(value)) throw at(`expected an object (a map), got ${describe(value)}`);
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      mapKey(field.keyType, key, at);
      out[key] = singleFromJson(type, field, item, `${path}["${key}"]`);
    }
    return out;
  }
  if (field.repeated) {
    if (!Array.isArray(value)) throw at(`expected an array, got ${describe(value)}`);
    return value.map((item, i) => {
      if (item === null) throw new ProtoJsonError(fullName(type), `${path}[${i}]`, 'null is not a value of a repeated field');
      return singleFromJson(type, field, item, `${path}[${i}]`);
    });
  }
  return singleFromJson(type, field, value, path);
}

function mapKey(keyType: string, key: string, at: (reason: string) => ProtoJsonError): void {
  if (keyType === 'string') return;
  if (keyType === 'bool') {
    if (key !== 'true' && key !== 'false') throw at(`map key "${key}" is not true or false`);
    return;
  }
  if (!/^-?\d+$/.test(key)) throw at(`map key "${key}" is not an integer`);
}

function singleFromJson(type: protobuf.Type, field: protobuf.Field, value: JsonValue, path: string): unknown {
  const at = (reason: string): ProtoJsonError => new ProtoJsonError(fullName(type), path, reason);
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) return fromProtoJson(resolved, value, path);
  if (resolved instanceof protobuf.Enum) return enumFromJson(resolved, value, at);
  return scalarFromJson(field.type, value, at);
}

function enumFromJson(e: protobuf.Enum, value: JsonValue, at: (reason: string) => ProtoJsonError): number {
  if (fullName(e) === 'google.protobuf.NullValue' && value === null) return 0;
  if (typeof value === 'string') {
    const n = e.values[value];
    if (n === undefined) throw at(`"${value}" is not a value of ${fullName(e)} (${Object.keys(e.values).join(', ')})`);
    return n;
  }
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  throw at(`expected a ${fullName(e)} name, got ${describe(value)}`);
}

function scalarFromJson(scalar: string, value: JsonValue, at: (reason: string) => ProtoJsonError): unknown {
  switch (scalar) {
    case 'string':
      if (typeof value !== 'string') throw at(`expected a string, got ${describe(value)}`);
      return value;
    case 'bool':
      if (typeof value !== 'boolean') throw at(`expected true or false, got ${describe(value)}`);
      return value;
    case 'bytes':
      if (typeof value !== 'string' || !BASE64.test(value)) throw at(`expected base64 bytes, got ${describe(value)}`);
      return new Uint8Array(Buffer.from(value, 'base64'));
    case 'double':
    case 'float': {
      if (typeof value === 'number') return value;
      if (value === 'NaN' || value === 'Infinity' || value === '-Infinity') return Number(value);
      if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value);
      throw at(`expected a number, got ${describe(value)}`);
    }
  }
  const range = INT32_RANGE[scalar];
  if (range) {
    const n = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < range[0] || n > range[1]) throw at(`expected a ${scalar}, got ${describe(value)}`);
    return n;
  }
  if (INT64.has(scalar)) {
    const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value;
    if (typeof text !== 'string' || !/^-?\d+$/.test(text)) throw at(`expected a ${scalar} (an integer or a string of one), got ${describe(value)}`);
    if (scalar.startsWith('u') || scalar === 'fixed64') {
      if (text.startsWith('-') || BigInt(text) > 2n ** 64n - 1n) throw at(`${text} is out of range for ${scalar}`);
    } else if (BigInt(text) < -(2n ** 63n) || BigInt(text) > 2n ** 63n - 1n) throw at(`${text} is out of range for ${scalar}`);
    return text;
  }
  throw at(`unsupported scalar type ${scalar}`);
}

/** The well-known types whose JSON is not an object of their fields; undefined for any other type. */
function specialFromJson(type: protobuf.Type, json: unknown, path: string): Record<string, unknown> | undefined {
  const name = fullName(type);
  if (!SPECIAL_JSON.has(name)) return undefined;
  const at = (reason: string): ProtoJsonError => new ProtoJsonError(name, path, reason);
  if (WRAPPERS.has(name)) {
    const valueField = fieldOf(type, 'value');
    return { [valueField.name]: scalarFromJson(valueField.type, json as JsonValue, at) };
  }
  switch (name) {
    case 'google.protobuf.Duration':
      return durationFromJson(type, json, at);
    case 'google.protobuf.Timestamp':
      return timestampFromJson(type, json, at);
    case 'google.protobuf.FieldMask': {
      if (typeof json !== 'string') throw at(`expected a comma-separated field mask, got ${describe(json)}`);
      const paths = json === '' ? [] : json.split(',').map((p) => p.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`));
      return { [fieldOf(type, 'paths').name]: paths };
    }
    case 'google.protobuf.Struct':
      return structFromJson(type, json, at, path);
    case 'google.protobuf.ListValue': {
      if (!Array.isArray(json)) throw at(`expected an array, got ${describe(json)}`);
      const values = fieldOf(type, 'values');
      return { [values.name]: json.map((v, i) => fromProtoJson(values.resolvedType as protobuf.Type, v, `${path}[${i}]`)) };
    }
    case 'google.protobuf.Value':
      return valueFromJson(type, json as JsonValue, path);
    case 'google.protobuf.Any':
      return anyFromJson(type, json, at, path);
  }
  return undefined;
}

function durationFromJson(type: protobuf.Type, json: unknown, at: (reason: string) => ProtoJsonError): Record<string, unknown> {
  const m = typeof json === 'string' ? /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(json) : null;
  if (!m) throw at(`expected a duration such as "5s" or "0.250s", got ${describe(json)}`);
  const sign = m[1] ? -1 : 1;
  const seconds = Number(m[2]);
  if (seconds > MAX_DURATION_SECONDS) throw at(`duration ${String(json)} is out of range (at most ${MAX_DURATION_SECONDS}s)`);
  const nanos = Number((m[3] ?? '').padEnd(9, '0'));
  return { [fieldOf(type, 'seconds').name]: sign * seconds, [fieldOf(type, 'nanos').name]: sign * nanos };
}

function timestampFromJson(type: protobuf.Type, json: unknown, at: (reason: string) => ProtoJsonError): Record<string, unknown> {
  const m = typeof json === 'string' ? /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/.exec(json) : null;
  const ms = m ? Date.parse(`${m[1]}${m[3]}`) : NaN;
  if (!m || Number.isNaN(ms)) throw at(`expected an RFC 3339 timestamp such as "2024-01-01T00:00:00Z", got ${describe(json)}`);
  return { [fieldOf(type, 'seconds').name]: ms / 1000, [fieldOf(type, 'nanos').name]: Number((m[2] ?? '').padEnd(9, '0')) };
}

function structFromJson(type: protobuf.Type, json: unknown, at: (reason: string) => ProtoJsonError, path: string): Record<string, unknown> {
  if (!isObject(json)) throw at(`expected an object, got ${describe(json)}`);
  const fields = fieldOf(type, 'fields');
  const valueType = fields.resolvedType as protobuf.Type;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) out[key] = valueFromJson(valueType, value, `${path}.${key}`);
  return { [fields.name]: out };
}

function valueFromJson(type: protobuf.Type, json: JsonValue, path: string): Record<string, unknown> {
  if (json === null) return { [fieldOf(type, 'null_value').name]: 0 };
  if (typeof json === 'number') return { [fieldOf(type, 'number_value').name]: json };
  if (typeof json === 'string') return { [fieldOf(type, 'string_value').name]: json };
  if (typeof json === 'boolean') return { [fieldOf(type, 'bool_value').name]: json };
  const kind = Array.isArray(json) ? fieldOf(type, 'list_value') : fieldOf(type, 'struct_value');
  return { [kind.name]: fromProtoJson(kind.resolvedType as protobuf.Type, json, path) };
}

function anyFromJson(type: protobuf.Type, json: unknown, at: (reason: string) => ProtoJsonError, path: string): Record<string, unknown> {
  if (!isObject(json)) throw at(`expected an object with "@type", got ${describe(json)}`);
  const typeUrl = json['@type'];
  if (typeof typeUrl !== 'string' || !typeUrl.includes('/')) throw at('"@type" must be a type URL such as "type.googleapis.com/envoy.config.listener.v3.Listener"');
  const innerName = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
  let inner: protobuf.Type;
  try {
    inner = type.root.lookupType(innerName);
  } catch {
    throw at(`unknown type ${innerName} in "@type" (it is not among the loaded protos)`);
  }
  const rest: JsonObject = Object.fromEntries(Object.entries(json).filter(([key]) => key !== '@type'));
  let body: unknown = rest;
  if (SPECIAL_JSON.has(innerName)) {
    const keys = Object.keys(rest);
    if (keys.length !== 1 || keys[0] !== 'value') throw at(`an Any of ${innerName} holds its JSON under "value" and nothing else`);
    body = rest['value'];
  }
  const object = fromProtoJson(inner, body, path);
  return { [fieldOf(type, 'type_url').name]: typeUrl, [fieldOf(type, 'value').name]: inner.encode(inner.fromObject(object)).finish() };
}

/** `json` as the binary encoding of `type`, after reading it strictly (see fromProtoJson). */
export function encodeProtoJson(type: protobuf.Type, json: unknown): Uint8Array {
  return type.encode(type.fromObject(fromProtoJson(type, json))).finish();
}
