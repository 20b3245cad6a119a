-- The containers this broker runs, one per execution: what reconciliation after a crash starts from.
CREATE TABLE broker_instances (
  execution_id    TEXT PRIMARY KEY,
  broker_id       TEXT NOT NULL,
  owner_id        TEXT NOT NULL,
  container_id    TEXT,
  -- provisioning | running | ended (the exit was published)
  state           TEXT NOT NULL,
  -- Why Paddock stopped it, if it did: cancelled | timed_out
  stop_cause      TEXT,
  deadline_ms     BIGINT,
  started_at_ms   BIGINT,
  finished_at_ms  BIGINT,
  -- How it ended, recorded before the container is removed so that a crash in between loses nothing.
  exit_cause      TEXT,
  exit_code       INTEGER,
  exit_detail     TEXT,
  artifacts_saved BOOLEAN NOT NULL DEFAULT false,
  created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX broker_instances_live ON broker_instances (broker_id) WHERE state <> 'ended';
