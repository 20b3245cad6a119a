-- Idempotency-Key of POST /api/v1/executions: per user, the execution a key created, for 24 h. A retry with
-- the same key and body gets that execution back instead of a second one.
CREATE TABLE idempotency_keys (
  owner_id        TEXT NOT NULL REFERENCES users (id),
  key             TEXT NOT NULL,
  -- SHA-256 of the request body (fields in sorted order), sealed with AES-256-GCM under the gateway's key
  -- and bound to the owner and key: the body may hold env values and tokens.
  request_digest  BYTEA NOT NULL,
  -- Deferred: the key is taken first, in the transaction that then stores the execution.
  execution_id    TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
  created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (owner_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
CREATE INDEX idempotency_keys_execution ON idempotency_keys (execution_id);
