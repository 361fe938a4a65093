-- The same logical schema as the SQLite backend's 0007_ingest.sql.
-- Gathering from source systems (carerecord-ingest): registered HL7 v2 senders, the log of
-- processed messages, dead letters, and the identity-matching review queue and merges.
-- Instants are microseconds since the Unix epoch, as elsewhere.

-- A sending system, known by its MSH-3 (application) and MSH-4 (facility), acting for one
-- organisation (`Organization/{org_id}`, ODS code `ods`). Unknown senders are refused (AR).
CREATE TABLE hl7_systems (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    org_id          TEXT NOT NULL,
    ods             TEXT NOT NULL,
    msh_application TEXT NOT NULL,
    msh_facility    TEXT NOT NULL,
    created         BIGINT NOT NULL,
    UNIQUE (msh_application, msh_facility)
);

-- Every message processed, keyed by its sender and MSH-10, with the ACK that was sent. Written
-- in the same transaction as the resources the message carried: a resent message finds its row
-- and is acknowledged again with the same ACK, and is never applied twice.
CREATE TABLE hl7_messages (
    sender      TEXT NOT NULL,
    control_id  TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    ack_code    TEXT NOT NULL,
    ack         BYTEA NOT NULL,
    patient_id  TEXT,
    PRIMARY KEY (sender, control_id)
);

-- Messages that could not be processed, kept whole (the raw bytes as received, without MLLP
-- framing) with the reason, until replayed.
CREATE TABLE dead_letters (
    id          BIGSERIAL PRIMARY KEY,
    received_at BIGINT NOT NULL,
    sender      TEXT,
    control_id  TEXT,
    reason      TEXT NOT NULL,
    raw         BYTEA NOT NULL,
    status      TEXT NOT NULL,   -- open | replayed
    attempts    BIGINT NOT NULL DEFAULT 0,
    resolved_at BIGINT
);
CREATE INDEX dead_letters_status ON dead_letters (status, id);

-- Uncertain identity matches: an incoming person was stored as `patient_id` but looks like
-- `candidate_id`. A reviewer links them (a merge) or rejects the suggestion.
CREATE TABLE match_reviews (
    id           BIGSERIAL PRIMARY KEY,
    created_at   BIGINT NOT NULL,
    source_ods   TEXT NOT NULL,
    patient_id   TEXT NOT NULL,
    candidate_id TEXT NOT NULL,
    score        BIGINT NOT NULL,
    reasons      TEXT NOT NULL,  -- which fields agreed, for the reviewer
    status       TEXT NOT NULL,  -- open | linked | rejected
    decided_at   BIGINT,
    decided_by   TEXT,
    merge_id     BIGINT
);
CREATE INDEX match_reviews_status ON match_reviews (status, id);

-- Merges (HL7 A40, a linked review item): `merged_id` was absorbed into `survivor_id`.
-- `moved` lists the resources re-pointed (JSON array of "Type/id/_history/version" of the
-- version written by the merge), so a merge can be undone and nothing is lost.
CREATE TABLE patient_merges (
    id          BIGSERIAL PRIMARY KEY,
    at          BIGINT NOT NULL,
    survivor_id TEXT NOT NULL,
    merged_id   TEXT NOT NULL,
    cause       TEXT NOT NULL,   -- hl7-a40 | review
    actor       TEXT NOT NULL,
    moved       TEXT NOT NULL,
    undone_at   BIGINT
);
CREATE INDEX patient_merges_merged ON patient_merges (merged_id);
