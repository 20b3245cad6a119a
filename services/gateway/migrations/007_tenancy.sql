-- Tenancy: teams contain projects, users are members of teams with a role, every execution belongs to a
-- project. Each user owns a personal team holding a personal project; the users and executions of the
-- release before get theirs here.
CREATE TABLE teams (
  id           TEXT PRIMARY KEY,
  name         TEXT NOT NULL,
  -- The user whose personal team this is; NULL for a team made through the API.
  personal_of  TEXT UNIQUE REFERENCES users (id),
  created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE team_members (
  team_id     TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
  user_id     TEXT NOT NULL REFERENCES users (id),
  role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members (user_id);

CREATE TABLE projects (
  id          TEXT PRIMARY KEY,
  team_id     TEXT NOT NULL REFERENCES teams (id),
  name        TEXT NOT NULL,
  -- The personal project of a personal team: where a user's executions go when a request names none.
  personal    BOOLEAN NOT NULL DEFAULT false,
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (team_id, name)
);
CREATE UNIQUE INDEX projects_personal ON projects (team_id) WHERE personal;

-- API tokens for automation, acting in one project with one role (at most their creator's there).
CREATE TABLE project_tokens (
  id          TEXT PRIMARY KEY,
  project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  name        TEXT NOT NULL,
  -- SHA-256 (hex) of the token; the token itself is shown once, when made.
  token_hash  TEXT NOT NULL UNIQUE,
  role        TEXT NOT NULL CHECK (role IN ('member', 'viewer')),
  created_by  TEXT NOT NULL REFERENCES users (id),
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  expires_at  TIMESTAMPTZ
);
CREATE INDEX project_tokens_project ON project_tokens (project_id, created_at);

-- A project's secrets, sealed like users' (AES-256-GCM under the gateway's key), bound to project and name.
CREATE TABLE project_secrets (
  project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  name        TEXT NOT NULL,
  sealed      BYTEA NOT NULL,
  updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, name)
);

-- Existing users: a personal team and project each, with ids derived from the user's so that both rows
-- can be made in one statement each.
INSERT INTO teams (id, name, personal_of, created_at)
  SELECT 't' || left(md5('paddock.team/' || id), 22), name, id, created_at FROM users;
INSERT INTO team_members (team_id, user_id, role, created_at)
  SELECT t.id, t.personal_of, 'owner', t.created_at FROM teams t;
INSERT INTO projects (id, team_id, name, personal, created_at)
  SELECT 'p' || left(md5('paddock.project/' || t.personal_of), 22), t.id, 'default', true, t.created_at FROM teams t;

ALTER TABLE executions ADD COLUMN project_id TEXT REFERENCES projects (id);
UPDATE executions e SET project_id = p.id
  FROM teams t JOIN projects p ON p.team_id = t.id AND p.personal
  WHERE t.personal_of = e.owner_id;
ALTER TABLE executions ALTER COLUMN project_id SET NOT NULL;
CREATE INDEX executions_project ON executions (project_id, id DESC);

-- paddock.v1.ExecutionAccount, protobuf-encoded: published by the outbox with the request. NULL for rows
-- stored before accounts, which get their attribution alone when they are published.
ALTER TABLE executions ADD COLUMN account BYTEA;
