-- 0012 (PostgreSQL): a worker remembers that something other than a fact made it
-- due again while it was leased (a hold's approval, a reconcile's mark), so that
-- the completion of the claim taken before does not clear that due time. ClaimDue
-- clears the flag; DecideHold and MarkDue set it; a completion that finds it set
-- leaves the worker due now (issue #10, defect 2: an approval was lost).
ALTER TABLE workers ADD COLUMN woken BOOLEAN NOT NULL DEFAULT FALSE;
