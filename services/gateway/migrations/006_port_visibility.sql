-- Who may open the URL of a port of an instance ({id}-{port}.{BASE_DOMAIN}): set by its owner with
-- PATCH /api/v1/instances/{id}/ports/{port}. A port without a row is private. The whole map of an instance
-- is published to services/xds on each change; the rows go with their execution.
CREATE TABLE port_visibility (
  execution_id  TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
  port          INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
  visibility    TEXT NOT NULL CHECK (visibility IN ('project', 'public')),
  updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (execution_id, port)
);
