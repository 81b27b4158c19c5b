-- Issue 17: the change-log position the cross-server findings (XS-AUTH-CONFLICT) were
-- last computed at, per run that computed them. A run that finds the log still there
-- (an unchanged re-crawl) keeps the stored findings instead of reading every
-- authoritative territory again. NULL: the run did not compute them.
ALTER TABLE crawl_runs ADD COLUMN cross_seq BIGINT;
