-- cds-registry core schema. Portable column types only (see README, "Storage"):
-- integers, doubles, text, blobs; times are epoch milliseconds; JSON is text; flags 0/1.

-- Hosts the operator seeded (or the crawler discovered through related_metadata).
CREATE TABLE hosts (
    id BIGSERIAL PRIMARY KEY,
    seed TEXT NOT NULL UNIQUE,
    metadata_url TEXT,
    source TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    moved_to TEXT,
    created_ms BIGINT NOT NULL,
    last_crawl_ms BIGINT,
    last_success_ms BIGINT,
    last_outcome TEXT,
    last_detail TEXT,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    next_due_ms BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until_ms BIGINT
);

-- The latest fetch of every document URL: validators for conditional GET and the body
-- (metadata, coverage pages) so a 304 can be processed without a download.
CREATE TABLE documents (
    id BIGSERIAL PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    content_hash TEXT NOT NULL,
    http_status BIGINT NOT NULL,
    size BIGINT NOT NULL,
    fetched_ms BIGINT NOT NULL,
    body TEXT
);

-- Every distinct content a document URL ever had (history).
CREATE TABLE document_versions (
    id BIGSERIAL PRIMARY KEY,
    url TEXT NOT NULL,
    kind TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    size BIGINT NOT NULL,
    body TEXT,
    first_seen_ms BIGINT NOT NULL,
    UNIQUE (url, content_hash)
);

-- One row per metadata document, keyed by the URL it was finally fetched from.
CREATE TABLE servers (
    id BIGSERIAL PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    host_id BIGINT NOT NULL REFERENCES hosts(id),
    parent_id BIGINT REFERENCES servers(id),
    depth BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'active',
    name TEXT NOT NULL,
    metadata_json TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    last_success_ms BIGINT NOT NULL,
    last_changed_ms BIGINT NOT NULL,
    last_failure_ms BIGINT,
    last_failure TEXT
);
CREATE INDEX servers_host ON servers(host_id);
CREATE INDEX servers_parent ON servers(parent_id);

-- Territories, shared by entries that link the same GeoJSON content.
CREATE TABLE territories (
    id BIGSERIAL PRIMARY KEY,
    source_url TEXT NOT NULL,
    source_hash TEXT NOT NULL,
    wkb BYTEA NOT NULL,
    min_lon DOUBLE PRECISION NOT NULL,
    min_lat DOUBLE PRECISION NOT NULL,
    max_lon DOUBLE PRECISION NOT NULL,
    max_lat DOUBLE PRECISION NOT NULL,
    vertex_count BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    UNIQUE (source_url, source_hash)
);

-- Coverage entries of the current state of each server (WG1-01 §4, every field;
-- raw_json keeps extension fields).
CREATE TABLE coverage_entries (
    id BIGSERIAL PRIMARY KEY,
    server_id BIGINT NOT NULL REFERENCES servers(id),
    entry_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    page_url TEXT NOT NULL,
    created TEXT,
    updated TEXT,
    entity_name TEXT NOT NULL,
    entity_abbreviation TEXT,
    country TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    entry_type TEXT NOT NULL,
    role TEXT NOT NULL,
    infrastructure_types TEXT NOT NULL,
    commodity_types TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    map_resource TEXT,
    map_content_type TEXT,
    geojson_resource TEXT,
    territory_id BIGINT REFERENCES territories(id),
    raw_json TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    UNIQUE (server_id, entry_id)
);
CREATE INDEX coverage_entries_territory ON coverage_entries(territory_id);

CREATE TABLE crawl_runs (
    id BIGSERIAL PRIMARY KEY,
    trigger TEXT NOT NULL,
    status TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    finished_ms BIGINT,
    hosts_total BIGINT NOT NULL DEFAULT 0,
    hosts_ok BIGINT NOT NULL DEFAULT 0,
    hosts_failed BIGINT NOT NULL DEFAULT 0,
    docs_fetched BIGINT NOT NULL DEFAULT 0,
    docs_unchanged BIGINT NOT NULL DEFAULT 0,
    bytes BIGINT NOT NULL DEFAULT 0,
    findings BIGINT NOT NULL DEFAULT 0
);

-- What happened to each host in each run.
CREATE TABLE crawl_outcomes (
    id BIGSERIAL PRIMARY KEY,
    run_id BIGINT NOT NULL REFERENCES crawl_runs(id),
    host_id BIGINT NOT NULL REFERENCES hosts(id),
    outcome TEXT NOT NULL,
    detail TEXT,
    http_status BIGINT,
    url TEXT,
    started_ms BIGINT NOT NULL,
    finished_ms BIGINT NOT NULL,
    docs_fetched BIGINT NOT NULL,
    docs_unchanged BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    servers_ok BIGINT NOT NULL,
    servers_failed BIGINT NOT NULL
);
CREATE INDEX crawl_outcomes_run ON crawl_outcomes(run_id);
CREATE INDEX crawl_outcomes_host ON crawl_outcomes(host_id);

-- Conformance findings of the current documents of a server (or of a host that has no
-- server, e.g. auth required on the well-known URL).
CREATE TABLE findings (
    id BIGSERIAL PRIMARY KEY,
    server_id BIGINT REFERENCES servers(id),
    host_id BIGINT REFERENCES hosts(id),
    run_id BIGINT NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    url TEXT NOT NULL,
    pointer TEXT NOT NULL,
    expected TEXT,
    actual TEXT,
    created_ms BIGINT NOT NULL
);
CREATE INDEX findings_server ON findings(server_id);
CREATE INDEX findings_host ON findings(host_id);

-- The change feed: one row per mutation, in commit order.
CREATE TABLE changes (
    seq BIGSERIAL PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    run_id BIGINT,
    entity TEXT NOT NULL,
    op TEXT NOT NULL,
    server_id BIGINT,
    ref TEXT NOT NULL,
    detail TEXT
);
