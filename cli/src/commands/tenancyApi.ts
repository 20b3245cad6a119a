import { PaddockClient } from '../client.js';
import type { ClientConfig } from '../clientConfig.js';

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
  readonly #client: PaddockClient;

  constructor(config: ClientConfig) {
    this.#client = new PaddockClient(config);
  }

  #json<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
    return this.#client.json<T>(method, path, body);
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
}
