-- An execution accepted while a hard budget with action "queue" was spent waits here, unpublished, until
-- billing admits its project again (the period turns, the limit is raised, the budget is removed). The
-- sentence names the budget; NULL for every execution that is not held.
ALTER TABLE executions ADD COLUMN held_by_budget TEXT;
