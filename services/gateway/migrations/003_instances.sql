-- Which broker runs an execution (from the scheduler's state events): where SSH, terminal and exec go.
ALTER TABLE executions ADD COLUMN broker_id TEXT;

-- One-time tickets that let a browser open WS /terminal/{id} without a token in the URL.
CREATE TABLE terminal_tickets (
  ticket_hash   TEXT PRIMARY KEY,
  execution_id  TEXT NOT NULL REFERENCES executions (id),
  user_id       TEXT NOT NULL REFERENCES users (id),
  expires_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX terminal_tickets_expiry ON terminal_tickets (expires_at);
