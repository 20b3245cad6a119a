import { errorResponses } from '../errors.js';

export const STATES = ['queued', 'provisioning', 'executing', 'completed', 'failed', 'cancelled'] as const;
export type ApiState = (typeof STATES)[number];

export interface ExecutionRequest {
  kind: 'shell' | 'python';
  command?: string;
  script?: string;
  files?: Record<string, string>;
  env?: Record<string, string>;
  image?: string;
  resources?: { cpus?: number; memoryMb?: number };
  timeoutS?: number;
  network?: 'none' | 'bridge';
}

export const executionRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['kind'],
  properties: {
    kind: { type: 'string', enum: ['shell', 'python'], description: 'shell runs `command` with /bin/sh -c; python runs `script`' },
    command: { type: 'string', minLength: 1, maxLength: 100_000 },
    script: { type: 'string', minLength: 1, maxLength: 5_000_000 },
    files: {
      type: 'object',
      description: 'Files written into /workspace before the job starts: relative path -> UTF-8 content',
      maxProperties: 1000,
      additionalProperties: { type: 'string' },
    },
    env: {
      type: 'object',
      maxProperties: 200,
      propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
      additionalProperties: { type: 'string', maxLength: 100_000 },
    },
    image: { type: 'string', minLength: 1, maxLength: 512, pattern: '^[A-Za-z0-9][A-Za-z0-9._/:@-]*$' },
    resources: {
      type: 'object',
      additionalProperties: false,
      properties: {
        cpus: { type: 'number', exclusiveMinimum: 0 },
        memoryMb: { type: 'integer', minimum: 16 },
      },
    },
    timeoutS: { type: 'integer', minimum: 1 },
    network: { type: 'string', enum: ['none', 'bridge'] },
  },
} as const;

const nullableString = { type: ['string', 'null'] } as const;

export const executionView = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    owner: { type: 'string' },
    kind: { type: 'string', enum: ['shell', 'python'] },
    state: { type: 'string', enum: STATES },
    exitCode: { type: ['integer', 'null'] },
    error: nullableString,
    image: { type: 'string' },
    command: nullableString,
    script: nullableString,
    files: { type: 'array', items: { type: 'string' }, description: 'paths of the files given' },
    env: { type: 'array', items: { type: 'string' }, description: 'names of the variables given (values are not shown)' },
    resources: {
      type: 'object',
      properties: { cpus: { type: 'number' }, memoryMb: { type: 'integer' } },
      required: ['cpus', 'memoryMb'],
    },
    timeoutS: { type: 'integer' },
    network: { type: 'string', enum: ['none', 'bridge'] },
    createdAt: { type: 'string' },
    startedAt: nullableString,
    finishedAt: nullableString,
  },
  required: ['id', 'owner', 'kind', 'state', 'exitCode', 'error', 'image', 'command', 'script', 'resources', 'timeoutS', 'network', 'createdAt', 'startedAt', 'finishedAt'],
} as const;

export const idParams = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 64 } },
} as const;

export const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    state: { type: 'string', enum: STATES },
    limit: { type: 'string', pattern: '^[0-9]{1,4}$', description: '1 to 500, default 50' },
    cursor: { type: 'string', maxLength: 64, description: 'nextCursor of the previous page' },
  },
} as const;

export const listView = {
  type: 'object',
  properties: { items: { type: 'array', items: executionView }, nextCursor: nullableString },
  required: ['items', 'nextCursor'],
} as const;

export { errorResponses };
