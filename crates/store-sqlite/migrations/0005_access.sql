-- What the access policy needs, kept next to each resource so the policy is compiled into the
-- queries that read records (see carerecord-access and carerecord-store's sql/visibility.rs).
--
-- Rows written before this migration carry no source and count as not sensitive: load them
-- again (`carerecord import` is idempotent by id) so they are classified.
ALTER TABLE resources ADD COLUMN source_ods TEXT;
ALTER TABLE resources ADD COLUMN sensitive INTEGER NOT NULL DEFAULT 0;
ALTER TABLE resource_history ADD COLUMN source_ods TEXT;
ALTER TABLE resource_history ADD COLUMN sensitive INTEGER NOT NULL DEFAULT 0;

-- Care relationships: the person `patient_id` is in the care of `org_id` because of the
-- resource (resource_type, id) — a residency (EpisodeOfCare), a registration (Patient) or an
-- encounter. Rewritten with each version of that resource, like the index rows.
CREATE TABLE care_relationships (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    patient_id    TEXT NOT NULL,
    org_id        TEXT NOT NULL,
    kind          TEXT NOT NULL,
    ends          INTEGER NOT NULL -- µs since the epoch, exclusive; the largest integer while open
);
CREATE INDEX care_relationships_patient ON care_relationships (patient_id, org_id, kind, ends);
CREATE INDEX care_relationships_org ON care_relationships (org_id, patient_id);
CREATE INDEX care_relationships_owner ON care_relationships (resource_type, id);

-- Objections to sharing, one row per resource that records one.
CREATE TABLE objections (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    patient_id    TEXT NOT NULL
);
CREATE INDEX objections_patient ON objections (patient_id);
CREATE INDEX objections_owner ON objections (resource_type, id);

-- Break-glass grants: a principal may see one person's record until `expires_at`.
CREATE TABLE break_glass (
    grant_id      TEXT PRIMARY KEY,
    principal_key TEXT NOT NULL,
    org_id        TEXT NOT NULL,
    patient_id    TEXT NOT NULL,
    reason_code   TEXT NOT NULL,
    reason_text   TEXT NOT NULL,
    granted_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    reviewed_by   TEXT,
    reviewed_at   INTEGER,
    review_note   TEXT
);
CREATE INDEX break_glass_live ON break_glass (patient_id, principal_key, expires_at);
CREATE INDEX break_glass_review ON break_glass (org_id, reviewed_at, granted_at);

-- The restricted view shows each person's latest discharge summary: find it by patient.
CREATE INDEX search_date_patient ON search_date (patient_id, resource_type, param, low);
