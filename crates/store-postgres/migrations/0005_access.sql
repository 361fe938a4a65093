-- What the access policy needs, kept next to each resource so the policy is compiled into the
-- queries that read records (see carerecord-access and carerecord-store's sql/visibility.rs).
-- The same logical schema as the SQLite backend's 0005_access.sql.
--
-- Rows written before this migration carry no source and count as not sensitive: load them
-- again (`carerecord import` is idempotent by id) so they are classified.
--
-- Citus: care_relationships, objections and break_glass carry patient_id and are distributed
-- by it, co-located with resources, so the per-row visibility probes stay on the shard.
ALTER TABLE resources ADD COLUMN source_ods TEXT COLLATE "C";
ALTER TABLE resources ADD COLUMN sensitive BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE resource_history ADD COLUMN source_ods TEXT COLLATE "C";
ALTER TABLE resource_history ADD COLUMN sensitive BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE care_relationships (
    resource_type TEXT COLLATE "C" NOT NULL,
    id            TEXT COLLATE "C" NOT NULL,
    patient_id    TEXT COLLATE "C" NOT NULL,
    org_id        TEXT COLLATE "C" NOT NULL,
    kind          TEXT COLLATE "C" NOT NULL,
    ends          BIGINT NOT NULL -- µs since the epoch, exclusive; the largest integer while open
);
CREATE INDEX care_relationships_patient ON care_relationships (patient_id, org_id, kind, ends);
CREATE INDEX care_relationships_org ON care_relationships (org_id, patient_id);
CREATE INDEX care_relationships_owner ON care_relationships (resource_type, id);

CREATE TABLE objections (
    resource_type TEXT COLLATE "C" NOT NULL,
    id            TEXT COLLATE "C" NOT NULL,
    patient_id    TEXT COLLATE "C" NOT NULL
);
CREATE INDEX objections_patient ON objections (patient_id);
CREATE INDEX objections_owner ON objections (resource_type, id);

CREATE TABLE break_glass (
    grant_id      TEXT COLLATE "C" PRIMARY KEY,
    principal_key TEXT COLLATE "C" NOT NULL,
    org_id        TEXT COLLATE "C" NOT NULL,
    patient_id    TEXT COLLATE "C" NOT NULL,
    reason_code   TEXT NOT NULL,
    reason_text   TEXT NOT NULL,
    granted_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    reviewed_by   TEXT,
    reviewed_at   BIGINT,
    review_note   TEXT
);
CREATE INDEX break_glass_live ON break_glass (patient_id, principal_key, expires_at);
CREATE INDEX break_glass_review ON break_glass (org_id, reviewed_at, granted_at);

CREATE INDEX search_date_patient ON search_date (patient_id, resource_type, param, low);
