-- Retention: final executions older than PADDOCK_RETENTION_DAYS are removed, their terminal tickets with them.
ALTER TABLE terminal_tickets
  DROP CONSTRAINT terminal_tickets_execution_id_fkey,
  ADD CONSTRAINT terminal_tickets_execution_id_fkey FOREIGN KEY (execution_id) REFERENCES executions (id) ON DELETE CASCADE;
CREATE INDEX terminal_tickets_execution ON terminal_tickets (execution_id);
CREATE INDEX executions_finished ON executions ((COALESCE(finished_at, created_at))) WHERE state IN ('completed', 'failed', 'cancelled');

COMMENT ON COLUMN executions.published IS
  'the outbox is done with the row: its request is on the bus, or it never can be and the execution was failed with the reason';
