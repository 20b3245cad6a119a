-- Billing's tables, in its own schema (the role's search_path): the ledger, its hourly rollup, prices as
-- data, budgets and their alerts, and the webhook outbox.

-- Who each execution is billed to, and the metering proxy's record of the run (its key's hash, its sealed
-- provider keys). Usage may arrive before it: figures join it at query time.
CREATE TABLE accounts (
  execution_id TEXT PRIMARY KEY,
  owner_id TEXT NOT NULL,
  project_id TEXT NOT NULL,
  team_id TEXT NOT NULL,
  workflow_id TEXT NOT NULL,
  llm_key_sha256 TEXT,
  sealed_llm_credentials BYTEA,
  requested_at_ms BIGINT NOT NULL,
  received_at_ms BIGINT NOT NULL
);
CREATE UNIQUE INDEX accounts_llm_key ON accounts (llm_key_sha256) WHERE llm_key_sha256 IS NOT NULL;
CREATE INDEX accounts_project ON accounts (project_id);
CREATE INDEX accounts_team ON accounts (team_id);

-- Executions that reached a final state: their run key is dead. Kept apart from accounts because the final
-- state may be consumed before the account.
CREATE TABLE execution_ends (
  execution_id TEXT PRIMARY KEY,
  ended_at_ms BIGINT NOT NULL
);

CREATE TABLE price_versions (
  version INTEGER PRIMARY KEY CHECK (version > 0),
  currency TEXT NOT NULL,
  note TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at_ms BIGINT NOT NULL
);

-- Per million tokens, in micro-units. `model` is a model name or the start of names it prices.
CREATE TABLE model_prices (
  version INTEGER NOT NULL REFERENCES price_versions (version),
  provider TEXT NOT NULL,
  model TEXT NOT NULL,
  input_micros_per_million BIGINT NOT NULL CHECK (input_micros_per_million >= 0),
  output_micros_per_million BIGINT NOT NULL CHECK (output_micros_per_million >= 0),
  cache_read_micros_per_million BIGINT NOT NULL CHECK (cache_read_micros_per_million >= 0),
  cache_write_micros_per_million BIGINT NOT NULL CHECK (cache_write_micros_per_million >= 0),
  PRIMARY KEY (version, provider, model)
);

CREATE TABLE compute_prices (
  version INTEGER PRIMARY KEY REFERENCES price_versions (version),
  cpu_micros_per_million_cpu_seconds BIGINT NOT NULL CHECK (cpu_micros_per_million_cpu_seconds >= 0),
  memory_micros_per_million_gib_seconds BIGINT NOT NULL CHECK (memory_micros_per_million_gib_seconds >= 0)
);

-- The ledger: one row per usage event, stored at most once (its id is the key). A compute row holds what
-- the execution used since the previous compute event that was ingested.
CREATE TABLE usage (
  event_id TEXT PRIMARY KEY,
  execution_id TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('llm', 'compute')),
  at_ms BIGINT NOT NULL,
  ingested_at_ms BIGINT NOT NULL,
  provider TEXT NOT NULL,
  model TEXT NOT NULL,
  api TEXT NOT NULL,
  input_tokens BIGINT NOT NULL,
  output_tokens BIGINT NOT NULL,
  cache_read_tokens BIGINT NOT NULL,
  cache_write_tokens BIGINT NOT NULL,
  cpu_ms BIGINT NOT NULL,
  memory_mib_ms BIGINT NOT NULL,
  wall_ms BIGINT NOT NULL,
  cost_micros BIGINT NOT NULL CHECK (cost_micros >= 0),
  price_version INTEGER NOT NULL REFERENCES price_versions (version),
  -- No price covered it: counted in tokens, its cost unknown (cost_micros 0).
  unpriced BOOLEAN NOT NULL
);
CREATE INDEX usage_at ON usage (at_ms);

-- The ledger summed per execution and UTC hour, written in the same transaction as the ledger rows: a cost
-- query reads whole hours here and only the partial hours at its ends from the ledger.
CREATE TABLE usage_hours (
  execution_id TEXT NOT NULL,
  hour_ms BIGINT NOT NULL,
  kind TEXT NOT NULL,
  provider TEXT NOT NULL,
  model TEXT NOT NULL,
  unpriced BOOLEAN NOT NULL,
  events BIGINT NOT NULL,
  input_tokens BIGINT NOT NULL,
  output_tokens BIGINT NOT NULL,
  cache_read_tokens BIGINT NOT NULL,
  cache_write_tokens BIGINT NOT NULL,
  cpu_ms BIGINT NOT NULL,
  memory_mib_ms BIGINT NOT NULL,
  wall_ms BIGINT NOT NULL,
  cost_micros BIGINT NOT NULL,
  PRIMARY KEY (execution_id, hour_ms, kind, provider, model, unpriced)
);
CREATE INDEX usage_hours_hour ON usage_hours (hour_ms);

-- Spending per project and per team and UTC hour, of the executions whose account has arrived: what budgets
-- read, whatever the size of the ledger. Usage is added as it is stored when its account is there, and an
-- account adds what its execution used before it came; both under the execution's lock, so once each.
CREATE TABLE scope_hours (
  scope TEXT NOT NULL CHECK (scope IN ('project', 'team')),
  scope_id TEXT NOT NULL,
  hour_ms BIGINT NOT NULL,
  cost_micros BIGINT NOT NULL,
  PRIMARY KEY (scope, scope_id, hour_ms)
);

-- Per execution, the totals of the last compute event ingested: the next event's delta is taken from them.
CREATE TABLE compute_totals (
  execution_id TEXT PRIMARY KEY,
  seq BIGINT NOT NULL,
  cpu_ms_total BIGINT NOT NULL,
  memory_mib_ms_total BIGINT NOT NULL,
  wall_ms_total BIGINT NOT NULL,
  at_ms BIGINT NOT NULL
);

CREATE TABLE budgets (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  scope TEXT NOT NULL CHECK (scope IN ('project', 'team')),
  scope_id TEXT NOT NULL,
  limit_micros BIGINT NOT NULL CHECK (limit_micros > 0),
  period TEXT NOT NULL CHECK (period IN ('day', 'week', 'month', 'total')),
  thresholds_percent INTEGER[] NOT NULL,
  hard BOOLEAN NOT NULL,
  action TEXT NOT NULL CHECK (action IN ('reject', 'queue')),
  webhook_url TEXT NOT NULL,
  webhook_secret TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at_ms BIGINT NOT NULL,
  updated_at_ms BIGINT NOT NULL
);
CREATE INDEX budgets_scope ON budgets (scope, scope_id);

-- Each threshold of each period alerts once: this row is the record that it did. Until published_at_ms is
-- set, the alert is still to be published on the bus (an outbox: a crash between the commit and the
-- publish loses nothing).
CREATE TABLE budget_alerts (
  budget_id TEXT NOT NULL REFERENCES budgets (id) ON DELETE CASCADE,
  period_start_ms BIGINT NOT NULL,
  threshold_percent INTEGER NOT NULL,
  period_end_ms BIGINT NOT NULL,
  spent_micros BIGINT NOT NULL,
  limit_micros BIGINT NOT NULL,
  at_ms BIGINT NOT NULL,
  published_at_ms BIGINT,
  PRIMARY KEY (budget_id, period_start_ms, threshold_percent)
);
CREATE INDEX budget_alerts_unpublished ON budget_alerts (at_ms) WHERE published_at_ms IS NULL;

-- Signed webhook calls still to make, and the record of those made or given up on.
CREATE TABLE webhook_deliveries (
  event_id TEXT PRIMARY KEY,
  budget_id TEXT NOT NULL REFERENCES budgets (id) ON DELETE CASCADE,
  url TEXT NOT NULL,
  body TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at_ms BIGINT NOT NULL,
  delivered_at_ms BIGINT,
  gave_up_at_ms BIGINT,
  last_error TEXT NOT NULL DEFAULT '',
  created_at_ms BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at_ms) WHERE delivered_at_ms IS NULL AND gave_up_at_ms IS NULL;
