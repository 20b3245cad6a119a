-- The scheduler's view of every execution: its place in the queue, where it runs, and its lifecycle state,
-- of which this table is the authority (the gateway keeps a projection for the API).
CREATE TABLE scheduler_jobs (
  execution_id      TEXT PRIMARY KEY,
  owner_id          TEXT NOT NULL,
  -- paddock.v1.ExecutionSpec, protobuf-encoded
  spec              BYTEA NOT NULL,
  -- queued | provisioning | executing | completed | failed | cancelled
  state             TEXT NOT NULL,
  -- Grows by one at each transition; published_version trails it until the transition is on the bus.
  version           INTEGER NOT NULL,
  published_version INTEGER NOT NULL,
  broker_id         TEXT,
  cancel_requested  BOOLEAN NOT NULL DEFAULT false,
  exit_code         INTEGER,
  reason            TEXT NOT NULL DEFAULT '',
  requested_at_ms   BIGINT NOT NULL,
  started_at_ms     BIGINT,
  finished_at_ms    BIGINT,
  launch_attempts   INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms   BIGINT NOT NULL DEFAULT 0,
  -- W3C traceparent of the request, so that every step of one execution is one trace.
  trace_parent      TEXT,
  updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX scheduler_jobs_queue ON scheduler_jobs (requested_at_ms) WHERE state = 'queued';
CREATE INDEX scheduler_jobs_active ON scheduler_jobs (broker_id) WHERE state IN ('provisioning', 'executing');
CREATE INDEX scheduler_jobs_unpublished ON scheduler_jobs (execution_id) WHERE published_version < version;
