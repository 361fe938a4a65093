-- Who may sign in. Instants are microseconds since the Unix epoch, as elsewhere.
CREATE TABLE users (
    id                   TEXT PRIMARY KEY,
    username             TEXT NOT NULL UNIQUE,
    display_name         TEXT NOT NULL,
    password_hash        TEXT NOT NULL,   -- Argon2id PHC string
    totp_secret          TEXT,            -- base32
    totp_last_step       BIGINT,         -- RFC 6238 §5.2: a code is accepted once
    failed_attempts      BIGINT NOT NULL DEFAULT 0,
    locked_until         BIGINT,
    training_valid_until BIGINT,
    created              BIGINT NOT NULL,
    disabled             BOOLEAN NOT NULL DEFAULT FALSE
);

-- A role at an organisation (`Organization/{organisation_id}` in the store).
CREATE TABLE role_grants (
    user_id         TEXT NOT NULL REFERENCES users (id),
    role            TEXT NOT NULL,
    organisation_id TEXT NOT NULL,
    PRIMARY KEY (user_id, organisation_id, role)
);
CREATE INDEX role_grants_role ON role_grants (role);

-- Registered systems (OAuth2 client credentials).
CREATE TABLE oauth_clients (
    client_id       TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL,
    role            TEXT NOT NULL,      -- system | service
    secret_hash     TEXT,               -- Argon2id PHC string, for client_secret_*
    public_key_pem  TEXT,               -- for private_key_jwt
    created         BIGINT NOT NULL,
    disabled        BOOLEAN NOT NULL DEFAULT FALSE
);

-- Bearer tokens, by SHA-256 of the opaque token: the table holds nothing usable as a token.
CREATE TABLE auth_tokens (
    token_hash TEXT PRIMARY KEY,
    subject    TEXT NOT NULL,
    principal  TEXT NOT NULL,           -- JSON snapshot of the principal
    created    BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    last_used  BIGINT NOT NULL,
    revoked    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX auth_tokens_subject ON auth_tokens (subject);
CREATE INDEX auth_tokens_expires ON auth_tokens (expires_at);

-- `jti`s of client assertions already accepted (RFC 7523 §3: replay protection).
CREATE TABLE client_assertion_ids (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertion_ids_expires ON client_assertion_ids (expires_at);
