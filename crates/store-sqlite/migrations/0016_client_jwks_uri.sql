-- Registered systems and SMART apps (issue 7): a client may publish its public keys at a JWKS
-- URL instead of registering a key. carerecord fetches the document (HTTPS, a timeout, a size
-- limit, cached) when it verifies a client assertion or a signed context launch.
-- The same logical schema on both backends.
CREATE TABLE client_jwks_uris (
    client_id TEXT PRIMARY KEY REFERENCES oauth_clients (client_id),
    jwks_uri  TEXT NOT NULL
);
