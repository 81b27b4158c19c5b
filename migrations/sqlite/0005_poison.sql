-- Poison hosts (issue 19): a host whose crawl never records an outcome (its worker was
-- killed, or got stuck) must not hold a run forever. Every takeover of an expired lease
-- counts here; after `crawl.max_lease_expiries` of them the host is recorded `timeout`
-- instead of being crawled again. Recording any outcome resets the count.
-- lease_taken_ms bounds how long one worker keeps renewing a host's lease.
ALTER TABLE hosts ADD COLUMN lease_expiries BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN lease_taken_ms BIGINT;
