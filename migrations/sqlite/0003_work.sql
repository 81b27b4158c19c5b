-- Work distribution (DESIGN.md, "Scaling past one machine"): a run marks the hosts it
-- wants crawled (hosts.run_id); workers lease them (lease_owner, lease_until_ms); a single
-- row lock keeps two runs from overlapping across every process sharing the database.
ALTER TABLE hosts ADD COLUMN run_id BIGINT;
CREATE INDEX hosts_run ON hosts(run_id);
ALTER TABLE crawl_runs ADD COLUMN hosts_pending BIGINT NOT NULL DEFAULT 0;
ALTER TABLE crawl_outcomes ADD COLUMN worker TEXT;
CREATE TABLE crawl_lock (
    id BIGINT PRIMARY KEY,
    run_id BIGINT
);
INSERT INTO crawl_lock (id, run_id) VALUES (1, NULL);
