-- Scope types (issue 15, WG1-02 §3.3/§3.4): scope ids are arbitrary strings, so clients
-- MUST match scopes by their `type`. The type is stored with each scope description, so
-- search can match it and show it. NULL: the description has no string `type` (the
-- validator reports that); rows stored before this migration read NULL until re-crawled.
ALTER TABLE oauth_scopes ADD COLUMN scope_type TEXT;
-- The change feed names the type of the scope a `scope` change row is about.
ALTER TABLE changes ADD COLUMN scope_type TEXT;
