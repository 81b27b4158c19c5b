-- Federation (issue 18): a registry re-publishes its index as a CDS aggregator, and a
-- registry crawling it stores where each copied entry came from: the entry's
-- `cds_registry_origin` object as JSON (origin server, origin id, role, capabilities,
-- the registries it passed through). NULL: the entry is its server's own.
ALTER TABLE coverage_entries ADD COLUMN origin TEXT;
