-- Each user's secrets (provider keys and the like), encrypted with AES-256-GCM under the gateway's key.
-- The API lists names only; values leave the gateway only inside an execution's environment.
CREATE TABLE secrets (
  owner_id    TEXT NOT NULL REFERENCES users (id),
  name        TEXT NOT NULL,
  -- 12-byte nonce || ciphertext || 16-byte tag; the owner and name are the associated data
  sealed      BYTEA NOT NULL,
  updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (owner_id, name)
);
