-- How an origin seed asked to be reached (`https://host/` or `http://host:port/`):
-- 'http', 'https', or NULL for a bare host name (https, or http where allow_http names it).
ALTER TABLE hosts ADD COLUMN scheme TEXT;
