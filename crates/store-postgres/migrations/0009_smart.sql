-- SMART App Launch (issue 7): apps that people authorise, the authorisation codes and refresh
-- tokens issued to them (only SHA-256 digests, as for bearer tokens), the access tokens issued
-- in each grant's family (so reuse of a code or a spent refresh token can revoke them all), and
-- the launch contexts the portal opens for an EHR launch.
-- The same logical schema as the SQLite backend's 0009_smart.sql.

-- An app registered for the authorisation code flow. Its credentials (a secret or a public key,
-- when confidential) are its `oauth_clients` row, whose role is `smart-app`.
CREATE TABLE smart_apps (
    client_id     TEXT PRIMARY KEY REFERENCES oauth_clients (client_id),
    name          TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,        -- space-separated, each matched exactly
    scopes        TEXT NOT NULL,        -- space-separated: the most it may be granted
    confidential  BOOLEAN NOT NULL,
    launch_url    TEXT,                 -- for an EHR launch from the portal
    created       BIGINT NOT NULL
);

-- Authorisation codes: single use, about a minute long.
CREATE TABLE smart_codes (
    code_hash      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,       -- PKCE S256
    grant_json     TEXT NOT NULL,       -- the principal, scope and context granted
    expires_at     BIGINT NOT NULL,
    used           BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX smart_codes_expires ON smart_codes (expires_at);

-- Refresh tokens, rotated on every use; one family per authorisation.
CREATE TABLE smart_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family     TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    grant_json TEXT NOT NULL,
    created    BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used       BOOLEAN NOT NULL DEFAULT FALSE,
    revoked    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX smart_refresh_tokens_family ON smart_refresh_tokens (family);

-- The access tokens (`auth_tokens`) issued in each family.
CREATE TABLE smart_family_tokens (
    token_hash TEXT PRIMARY KEY,
    family     TEXT NOT NULL
);
CREATE INDEX smart_family_tokens_family ON smart_family_tokens (family);

-- EHR launch: an opaque id the portal hands to an app, bound to the user, app and patient.
CREATE TABLE smart_launches (
    launch_hash TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    patient_id  TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used        BOOLEAN NOT NULL DEFAULT FALSE
);
