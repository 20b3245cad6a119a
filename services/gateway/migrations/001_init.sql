-- Who may call the API. Tokens are stored as SHA-256 hashes only.
CREATE TABLE users (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  token_hash  TEXT NOT NULL UNIQUE,
  is_admin    BOOLEAN NOT NULL DEFAULT false,
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The API's record of every execution: the request as accepted, and the lifecycle state projected from
-- paddock.v1.execution.*.state (the scheduler is the authority; version orders the updates).
CREATE TABLE executions (
  id           TEXT PRIMARY KEY,
  owner_id     TEXT NOT NULL REFERENCES users (id),
  request      JSONB NOT NULL,
  -- paddock.v1.ExecutionSpec, protobuf-encoded, as published
  spec         BYTEA NOT NULL,
  state        TEXT NOT NULL,
  version      INTEGER NOT NULL DEFAULT 1,
  exit_code    INTEGER,
  error        TEXT,
  created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
  started_at   TIMESTAMPTZ,
  finished_at  TIMESTAMPTZ,
  -- The outbox flag: false until paddock.v1.execution.<id>.requested is stored in JetStream.
  published    BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX executions_owner ON executions (owner_id, id DESC);
CREATE INDEX executions_state ON executions (state, id DESC);
CREATE INDEX executions_unpublished ON executions (created_at) WHERE NOT published;
