-- SMART Backend Services (issue 7): the scopes a registered client (`oauth_clients`) may be
-- granted, as a space-separated SMART scope string. A client without a row is not limited by
-- registration (the policy still is); a token request's scopes are cut down to these.
-- The same logical schema as the SQLite backend's 0010_client_scopes.sql.
CREATE TABLE client_scopes (
    client_id TEXT PRIMARY KEY REFERENCES oauth_clients (client_id),
    scope     TEXT NOT NULL
);
