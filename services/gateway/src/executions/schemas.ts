import { RUNTIME_NAMES } from '@paddock/runtimes';
import { errorResponses } from '../errors.js';

export const STATES = ['queued', 'provisioning', 'executing', 'completed', 'failed', 'cancelled'] as const;
export type ApiState = (typeof STATES)[number];

export type Kind = 'shell' | 'python' | 'agent';

export interface RepoRequest {
  url: string;
  branch?: string;
  token?: string;
}

export interface ExecutionRequest {
  kind: Kind;
  command?: string;
  script?: string;
  runtime?: string;
  prompt?: string;
  repo?: RepoRequest;
  service?: boolean;
  files?: Record<string, string>;
  env?: Record<string, string>;
  image?: string;
  resources?: { cpus?: number; memoryMb?: number; diskMb?: number };
  timeoutS?: number;
  network?: 'none' | 'bridge';
  containerRuntime?: ContainerRuntimeName;
  secrets?: string[];
  egress?: string[];
  project?: string;
}

/** The OCI runtimes a request may ask for: runc (the default) or gVisor (runsc). */
export const CONTAINER_RUNTIMES = ['runc', 'gvisor'] as const;
export type ContainerRuntimeName = (typeof CONTAINER_RUNTIMES)[number];

export const executionRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['kind'],
  properties: {
    kind: {
      type: 'string',
      enum: ['shell', 'python', 'agent'],
      description: 'shell runs `command` with /bin/sh -c; python runs `script`; agent gives `prompt` to the agent `runtime`',
    },
    command: { type: 'string', minLength: 1, maxLength: 100_000 },
    script: {
      type: 'string',
      minLength: 1,
      description: 'the Python script (kind python); one larger than the inline budget is stored in the blob store and shown back as scriptRef',
    },
    runtime: { type: 'string', enum: RUNTIME_NAMES, description: 'the agent runtime (kind agent); default: the server\'s default runtime' },
    prompt: { type: 'string', minLength: 1, maxLength: 1_000_000 },
    repo: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      description: 'a git repository cloned into /workspace before the agent starts (kind agent)',
      properties: {
        url: { type: 'string', minLength: 1, maxLength: 2048, pattern: '^(https?|git|ssh)://[^\\s]+$' },
        branch: { type: 'string', minLength: 1, maxLength: 256, pattern: '^[A-Za-z0-9._/-]+$' },
        token: { type: 'string', minLength: 1, maxLength: 4096, description: 'sent to the repository host as HTTP basic auth; never shown back' },
      },
    },
    files: {
      type: 'object',
      description:
        'Files written into /workspace before the job starts: relative path -> UTF-8 content. Small ones travel with the request; large ones are stored once and travel by reference. Together with the rest of the request they may fill the whole body limit.',
      maxProperties: 1000,
      additionalProperties: { type: 'string' },
    },
    env: {
      type: 'object',
      maxProperties: 200,
      description: 'environment variables: names of letters, digits and _ (not first a digit)',
      additionalProperties: { type: 'string', maxLength: 100_000 },
    },
    image: { type: 'string', minLength: 1, maxLength: 512, pattern: '^[A-Za-z0-9][A-Za-z0-9._/:@-]*$' },
    resources: {
      type: 'object',
      additionalProperties: false,
      properties: {
        cpus: { type: 'number', minimum: 0.01, description: 'CPU cores, in steps of 0.001; at least 0.01' },
        memoryMb: { type: 'integer', minimum: 16 },
        diskMb: { type: 'integer', minimum: 16, description: 'the most /workspace may hold; a job that needs more ends failed, saying so' },
      },
    },
    timeoutS: { type: 'integer', minimum: 1 },
    network: {
      type: 'string',
      enum: ['none', 'bridge'],
      description: 'none (the default for jobs): no network at all; bridge (the default for agents): a network of the execution\'s own, with the internet and nothing of the host or of other executions',
    },
    containerRuntime: {
      type: 'string',
      enum: CONTAINER_RUNTIMES,
      description: 'runc (the default): Linux namespaces and cgroups; gvisor: also under gVisor\'s user-space kernel (runsc)',
    },
    secrets: {
      type: 'array',
      maxItems: 100,
      uniqueItems: true,
      items: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' },
      description:
        "names of stored secrets to put in the environment, each the owner's own or else the project's (the request's own env wins); no other secret enters the container. " +
        'Provider keys (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, GOOGLE_API_KEY) go to the LLM metering proxy instead, and the container gets a run key in their place',
    },
    egress: {
      type: 'array',
      maxItems: 100,
      uniqueItems: true,
      items: { type: 'string', minLength: 1, maxLength: 260 },
      description:
        'hosts the instance may reach, and no others, through Paddock\'s egress proxy (HTTP_PROXY and HTTPS_PROXY inside, 127.0.0.1:3128): "pypi.org" (ports 80 and 443), "github.com:443", "*.npmjs.org" (its subdomains). The instance has no network but the proxy; not with "network": "bridge"',
    },
    project: {
      type: 'string',
      minLength: 1,
      maxLength: 64,
      description: "the id of the project it belongs to (the caller needs the member role there); default: the caller's personal project, or a project token's own",
    },
    service: {
      type: 'boolean',
      description: 'keep the instance up after its work (tmux session `agent`, SSH, terminal) until it is cancelled; without timeoutS it has none but the maximum',
    },
  },
} as const;

const nullableString = { type: ['string', 'null'] } as const;

export const executionView = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    owner: { type: 'string' },
    projectId: { type: 'string' },
    teamId: { type: 'string' },
    kind: { type: 'string', enum: ['shell', 'python', 'agent'] },
    state: { type: 'string', enum: STATES },
    exitCode: { type: ['integer', 'null'] },
    error: nullableString,
    heldByBudget: { ...nullableString, description: 'set while a spent hard budget (action "queue") holds the execution back: which budget, and what lifts it' },
    image: { type: 'string' },
    command: nullableString,
    script: nullableString,
    scriptRef: {
      type: ['object', 'null'],
      properties: { sha256: { type: 'string' }, sizeBytes: { type: 'integer' } },
      required: ['sha256', 'sizeBytes'],
      description: 'a script too large to travel with the request, kept in the blob store only (script is then null)',
    },
    runtime: nullableString,
    prompt: nullableString,
    repo: {
      type: ['object', 'null'],
      properties: { url: { type: 'string' }, branch: nullableString },
      required: ['url', 'branch'],
      description: 'the repository asked for (its token is never shown)',
    },
    files: { type: 'array', items: { type: 'string' }, description: 'paths of the files given' },
    env: { type: 'array', items: { type: 'string' }, description: 'names of the variables given (values are not shown)' },
    resources: {
      type: 'object',
      properties: { cpus: { type: 'number' }, memoryMb: { type: 'integer' }, diskMb: { type: 'integer', description: '0: no limit' } },
      required: ['cpus', 'memoryMb'],
    },
    timeoutS: { type: 'integer' },
    network: { type: 'string', enum: ['none', 'bridge'] },
    containerRuntime: { type: 'string', enum: CONTAINER_RUNTIMES },
    secrets: { type: 'array', items: { type: 'string' }, description: 'names of the stored secrets given (values are not shown)' },
    egress: { type: 'array', items: { type: 'string' }, description: 'hosts it may reach through the egress proxy' },
    service: { type: 'boolean' },
    createdAt: { type: 'string' },
    startedAt: nullableString,
    finishedAt: nullableString,
  },
  required: ['id', 'owner', 'projectId', 'teamId', 'kind', 'state', 'exitCode', 'error', 'image', 'command', 'script', 'scriptRef', 'runtime', 'prompt', 'repo', 'resources', 'timeoutS', 'network', 'containerRuntime', 'secrets', 'createdAt', 'startedAt', 'finishedAt'],
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
    project: { type: 'string', minLength: 1, maxLength: 64, description: "one project's executions only" },
  },
} as const;

export const listView = {
  type: 'object',
  properties: { items: { type: 'array', items: executionView }, nextCursor: nullableString },
  required: ['items', 'nextCursor'],
} as const;

export { errorResponses };

/** A ZIP download; errors are still JSON. */
export const zipResponse = {
  description: 'the workspace as a ZIP archive',
  content: { 'application/zip': { schema: { type: 'string', format: 'binary' } } },
} as const;
