-- carerecord's PostgreSQL schema: the same logical schema as the SQLite backend
-- (crates/store-sqlite/migrations), so the shared SQL in carerecord-store runs on both.
--
-- Types: instants are BIGINT microseconds since the Unix epoch; `deleted` is BOOLEAN; numbers
-- are DOUBLE PRECISION; `body` is TEXT (not JSONB) so the JSON stays exactly as received,
-- element order and decimal text included. Every text column that is compared or sorted is
-- declared COLLATE "C": ordering is then bytewise, as in SQLite's BINARY collation, which the
-- keyset cursors and the starts-with ranges (`>= v AND < v || U+10FFFF`) rely on. It is also
-- the fastest collation for btree indexes.
--
-- Distribution with Citus (a plan, not applied here)
-- -----------------------------------------------
-- Every row that belongs to a patient carries `patient_id`, the Patient compartment it is in
-- (computed once at write time by carerecord-store's `prepare_version`). That is the
-- distribution column:
--
--   resources          SELECT create_distributed_table('resources', 'patient_id');
--   resource_history   SELECT create_distributed_table('resource_history', 'patient_id',
--                                                      colocate_with => 'resources');
--   search_string, search_token, search_date, search_reference, search_number,
--   search_quantity, search_uri
--                      SELECT create_distributed_table('<table>', 'patient_id',
--                                                      colocate_with => 'resources');
--
-- Co-location means one patient's resources, their history and their index rows live on the
-- same shard: $everything, a patient-scoped search (`Observation?patient=…`), and a write
-- transaction touching one patient's resources are single-shard operations; searches that are
-- not patient-scoped fan out to every shard in parallel.
--
-- What has to change before distributing:
--   * Primary keys and unique indexes on a distributed table must include the distribution
--     column: `resources` would become PRIMARY KEY (patient_id, resource_type, id) and
--     `resource_history` (patient_id, resource_type, id, version_id). Uniqueness of
--     (resource_type, id) across shards is then kept by the write path (the resource is read
--     with `current` before it is written, under an advisory lock on its key).
--   * Rows outside every patient compartment (Organization, Practitioner, Location, Medication,
--     …) have a NULL patient_id. Citus puts every NULL on one shard; better is to keep those
--     types in separate reference tables (replicated to every node), since they are small and
--     read-mostly, or to give them a synthetic shard key of their own id.
--   * A resource that moves between patients (its subject changes) changes its distribution
--     value: the write path must delete and re-insert it rather than UPDATE in place.
--   * `pg_advisory_xact_lock` is per node: conditional creates must lock on the coordinator
--     (Citus routes advisory locks there when the transaction is coordinated).
--   * The index tables' queries always filter by (resource_type, id) of the owner; adding
--     `patient_id` to those predicates where known lets Citus prune to one shard.

CREATE TABLE resources (
    resource_type TEXT COLLATE "C" NOT NULL,
    id            TEXT COLLATE "C" NOT NULL,
    version_id    BIGINT NOT NULL,
    patient_id    TEXT COLLATE "C",
    last_updated  BIGINT NOT NULL, -- microseconds since the Unix epoch
    deleted       BOOLEAN NOT NULL DEFAULT FALSE,
    body          TEXT NOT NULL,
    PRIMARY KEY (resource_type, id)
);
CREATE INDEX resources_patient ON resources (patient_id, resource_type, id);
CREATE INDEX resources_updated ON resources (resource_type, last_updated);

-- Every version, deletion markers included (body '' for those).
CREATE TABLE resource_history (
    resource_type TEXT COLLATE "C" NOT NULL,
    id            TEXT COLLATE "C" NOT NULL,
    version_id    BIGINT NOT NULL,
    patient_id    TEXT COLLATE "C",
    last_updated  BIGINT NOT NULL,
    deleted       BOOLEAN NOT NULL DEFAULT FALSE,
    body          TEXT NOT NULL,
    PRIMARY KEY (resource_type, id, version_id)
);
CREATE INDEX resource_history_updated ON resource_history (last_updated);

-- Search index rows for the current version only; rewritten with each version.
CREATE TABLE search_string (
    resource_type TEXT COLLATE "C" NOT NULL,
    id            TEXT COLLATE "C" NOT NULL,
    patient_id    TEXT COLLATE "C",
    param         TEXT COLLATE "C" NOT NULL,
    normalized    TEXT COLLATE "C" NOT NULL,
    exact         TEXT COLLATE "C" NOT NULL
);
CREATE INDEX search_string_value ON search_string (resource_type, param, normalized);
CREATE INDEX search_string_owner ON search_string (resource_type, id);

CREATE TABLE search_token (
    resource_type TEXT COLLATE "C" NOT NULL,
    id            TEXT COLLATE "C" NOT NULL,
    patient_id    TEXT COLLATE "C",
    param         TEXT COLLATE "C" NOT NULL,
    system        TEXT COLLATE "C",
    code          TEXT COLLATE "C",
    text          TEXT COLLATE "C"
);
CREATE INDEX search_token_value ON search_token (resource_type, param, code, system);
CREATE INDEX search_token_owner ON search_token (resource_type, id);

CREATE TABLE search_date (
    resource_type TEXT COLLATE "C" NOT NULL,
    id            TEXT COLLATE "C" NOT NULL,
    patient_id    TEXT COLLATE "C",
    param         TEXT COLLATE "C" NOT NULL,
    low           BIGINT NOT NULL,
    high          BIGINT NOT NULL
);
CREATE INDEX search_date_value ON search_date (resource_type, param, low, high);
CREATE INDEX search_date_owner ON search_date (resource_type, id);

CREATE TABLE search_reference (
    resource_type     TEXT COLLATE "C" NOT NULL,
    id                TEXT COLLATE "C" NOT NULL,
    patient_id        TEXT COLLATE "C",
    param             TEXT COLLATE "C" NOT NULL,
    target_type       TEXT COLLATE "C",
    target_id         TEXT COLLATE "C",
    url               TEXT COLLATE "C",
    identifier_system TEXT COLLATE "C",
    identifier_value  TEXT COLLATE "C"
);
CREATE INDEX search_reference_target ON search_reference (target_id, target_type, param, resource_type);
CREATE INDEX search_reference_owner ON search_reference (resource_type, id);
CREATE INDEX search_reference_identifier ON search_reference (resource_type, param, identifier_value);

CREATE TABLE search_number (
    resource_type TEXT COLLATE "C" NOT NULL,
    id            TEXT COLLATE "C" NOT NULL,
    patient_id    TEXT COLLATE "C",
    param         TEXT COLLATE "C" NOT NULL,
    value         DOUBLE PRECISION NOT NULL,
    low           DOUBLE PRECISION NOT NULL,
    high          DOUBLE PRECISION NOT NULL
);
CREATE INDEX search_number_value ON search_number (resource_type, param, value);
CREATE INDEX search_number_owner ON search_number (resource_type, id);

CREATE TABLE search_quantity (
    resource_type TEXT COLLATE "C" NOT NULL,
    id            TEXT COLLATE "C" NOT NULL,
    patient_id    TEXT COLLATE "C",
    param         TEXT COLLATE "C" NOT NULL,
    value         DOUBLE PRECISION NOT NULL,
    low           DOUBLE PRECISION NOT NULL,
    high          DOUBLE PRECISION NOT NULL,
    system        TEXT COLLATE "C",
    code          TEXT COLLATE "C",
    unit          TEXT COLLATE "C"
);
CREATE INDEX search_quantity_value ON search_quantity (resource_type, param, value);
CREATE INDEX search_quantity_owner ON search_quantity (resource_type, id);

CREATE TABLE search_uri (
    resource_type TEXT COLLATE "C" NOT NULL,
    id            TEXT COLLATE "C" NOT NULL,
    patient_id    TEXT COLLATE "C",
    param         TEXT COLLATE "C" NOT NULL,
    value         TEXT COLLATE "C" NOT NULL
);
CREATE INDEX search_uri_value ON search_uri (resource_type, param, value);
CREATE INDEX search_uri_owner ON search_uri (resource_type, id);
