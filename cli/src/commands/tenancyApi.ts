import { apiError } from '../client.js';
import type { ClientConfig } from '../clientConfig.js';
import { CommandError, ConnectionError } from '../errors.js';
import { truncate } from '../format.js';

export type Role = 'owner' | 'admin' | 'member' | 'viewer';
export const ROLES: readonly Role[] = ['owner', 'admin', 'member', 'viewer'];

export interface Team {
  readonly id: string;
  readonly name: string;
  readonly personal: boolean;
  /** The caller's role in it. */
  readonly role: Role;
  readonly createdAt: string;
}

export interface Member {
  readonly userId: string;
  readonly name: string;
  readonly role: Role;
  readonly addedAt: string;
}

export interface Project {
  readonly id: string;
  readonly teamId: string;
  readonly name: string;
  readonly personal: boolean;
  readonly role: Role;
  readonly createdAt: string;
}

export interface ProjectToken {
  readonly id: string;
  readonly projectId: string;
  readonly name: string;
  readonly role: 'member' | 'viewer';
  readonly createdBy: string;
  readonly createdAt: string;
  readonly expiresAt: string | null;
}

/** The teams and projects routes of the API, as `paddock teams` and `paddock projects` use them. */
export class TenancyApi {
  readonly #config: ClientConfig;

  constructor(config: ClientConfig) {
    this.#config = config;
  }

  async teams(): Promise<Team[]> {
    return (await this.#json<{ items: Team[] }>('GET', '/api/v1/teams')).items;
  }

  createTeam(name: string): Promise<Team> {
    return this.#json('POST', '/api/v1/teams', { name });
  }

  team(id: string): Promise<Team & { members: Member[]; projects: Project[] }> {
    return this.#json('GET', `/api/v1/teams/${encodeURIComponent(id)}`);
  }

  addMember(teamId: string, userId: string, role: Role): Promise<Member> {
    return this.#json('POST', `/api/v1/teams/${encodeURIComponent(teamId)}/members`, { userId, role });
  }

  async removeMember(teamId: string, userId: string): Promise<void> {
    await this.#json('DELETE', `/api/v1/teams/${encodeURIComponent(teamId)}/members/${encodeURIComponent(userId)}`);
  }

  async projects(teamId?: string): Promise<Project[]> {
    const query = teamId === undefined ? '' : `?team=${encodeURIComponent(teamId)}`;
    return (await this.#json<{ items: Project[] }>('GET', `/api/v1/projects${query}`)).items;
  }

  createProject(teamId: string, name: string): Promise<Project> {
    return this.#json('POST', '/api/v1/projects', { teamId, name });
  }

  project(id: string): Promise<Project> {
    return this.#json('GET', `/api/v1/projects/${encodeURIComponent(id)}`);
  }

  async tokens(projectId: string): Promise<ProjectToken[]> {
    return (await this.#json<{ items: ProjectToken[] }>('GET', `/api/v1/projects/${encodeURIComponent(projectId)}/tokens`)).items;
  }

  createToken(projectId: string, body: { role: 'member' | 'viewer'; name?: string; expiresInSeconds?: number }): Promise<ProjectToken & { token: string }> {
    return this.#json('POST', `/api/v1/projects/${encodeURIComponent(projectId)}/tokens`, body);
  }

  async revokeToken(projectId: string, tokenId: string): Promise<void> {
    await this.#json('DELETE', `/api/v1/projects/${encodeURIComponent(projectId)}/tokens/${encodeURIComponent(tokenId)}`);
  }

  /** The answer's JSON; an empty answer (204) is undefined. */
  async #json<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.#config.token}`, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    let text: string;
    try {
      response = await fetch(this.#config.baseUrl + path, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
      text = await response.text();
    } catch (err) {
      throw new ConnectionError(this.#config.baseUrl, err);
    }
    if (!response.ok) throw apiError(response.status, response.statusText, text);
    if (text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new CommandError(`unexpected answer from ${method} ${path} (HTTP ${response.status}): ${truncate(text, 200)}`, { cause: err });
    }
  }
}
