/** An execution as the REST API returns it. */
export interface Execution {
  readonly id: string;
  readonly owner: string;
  readonly kind: string;
  readonly state: string;
  readonly exitCode: number | null;
  readonly error: string | null;
  readonly image: string;
  readonly command: string | null;
  readonly createdAt: string;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
  readonly timeoutS: number;
  readonly resources: { readonly cpus: number; readonly memoryMb: number };
  readonly network: string;
}

export interface ExecutionPage {
  readonly items: readonly Execution[];
  readonly nextCursor: string | null;
}

/** The body of `POST /api/v1/executions`. */
export interface ExecutionRequest {
  readonly kind: 'shell' | 'python';
  readonly command?: string;
  readonly script?: string;
  readonly image?: string;
  readonly env?: Readonly<Record<string, string>>;
  /** Workspace-relative path -> UTF-8 content. */
  readonly files?: Readonly<Record<string, string>>;
  readonly resources?: { readonly cpus?: number; readonly memoryMb?: number };
  readonly timeoutS?: number;
  readonly network?: 'none' | 'bridge';
  /** A project's id; default: the caller's personal project. */
  readonly project?: string;
}

export const TERMINAL_STATES: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled']);
