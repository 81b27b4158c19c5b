-- The `oauth` capability (WG1-02 §3): each server's OAuth authorization server metadata
-- (RFC 8414) and its scopes, replaced with the server's state on every commit. The document
-- itself is kept with the others in `documents` / `document_versions` (history).

-- One row per server that offers `oauth` and whose metadata document could be read.
CREATE TABLE oauth_metadata (
    server_id BIGINT PRIMARY KEY REFERENCES servers(id),
    url TEXT NOT NULL,
    issuer TEXT,
    registration_endpoint TEXT,
    human_registration TEXT,
    raw_json TEXT NOT NULL
);

-- One row per `cds_scope_descriptions` entry; `coverages` is the JSON array of coverage
-- entry ids the scope is offered for (`coverages_supported`), `grant_types` a JSON array.
CREATE TABLE oauth_scopes (
    id BIGSERIAL PRIMARY KEY,
    server_id BIGINT NOT NULL REFERENCES servers(id),
    scope TEXT NOT NULL,
    position BIGINT NOT NULL,
    name TEXT,
    description TEXT,
    documentation TEXT,
    grant_types TEXT NOT NULL,
    coverages TEXT NOT NULL,
    UNIQUE (server_id, scope) -- also the index for per-server reads
);
