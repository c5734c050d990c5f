-- 0010: removals settle before they are judged. A burst of a feed's removals
-- collects in a hold of status 'settling' until judge_at; it is then judged whole:
-- 'passed' (under the thresholds, every removal runs) or 'open' (held whole).
ALTER TABLE holds ADD COLUMN judge_at TIMESTAMPTZ;
CREATE UNIQUE INDEX holds_settling ON holds (feed) WHERE status = 'settling';
