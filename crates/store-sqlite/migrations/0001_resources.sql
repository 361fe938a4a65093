-- Current version of every resource. `patient_id` is the Patient compartment the resource
-- belongs to (NULL outside every patient compartment): access control and $everything use it.
CREATE TABLE resources (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    version_id    INTEGER NOT NULL,
    patient_id    TEXT,
    last_updated  INTEGER NOT NULL, -- microseconds since the Unix epoch
    deleted       INTEGER NOT NULL DEFAULT 0,
    body          TEXT NOT NULL,
    PRIMARY KEY (resource_type, id)
);
CREATE INDEX resources_patient ON resources (patient_id, resource_type, id);
CREATE INDEX resources_updated ON resources (resource_type, last_updated);

-- Every version, deletion markers included (body '' for those).
CREATE TABLE resource_history (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    version_id    INTEGER NOT NULL,
    patient_id    TEXT,
    last_updated  INTEGER NOT NULL,
    deleted       INTEGER NOT NULL DEFAULT 0,
    body          TEXT NOT NULL,
    PRIMARY KEY (resource_type, id, version_id)
);
CREATE INDEX resource_history_updated ON resource_history (last_updated);

-- Search index rows for the current version only; rewritten with each version.
CREATE TABLE search_string (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    patient_id    TEXT,
    param         TEXT NOT NULL,
    normalized    TEXT NOT NULL,
    exact         TEXT NOT NULL
);
CREATE INDEX search_string_value ON search_string (resource_type, param, normalized);
CREATE INDEX search_string_owner ON search_string (resource_type, id);

CREATE TABLE search_token (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    patient_id    TEXT,
    param         TEXT NOT NULL,
    system        TEXT,
    code          TEXT,
    text          TEXT
);
CREATE INDEX search_token_value ON search_token (resource_type, param, code, system);
CREATE INDEX search_token_owner ON search_token (resource_type, id);

CREATE TABLE search_date (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    patient_id    TEXT,
    param         TEXT NOT NULL,
    low           INTEGER NOT NULL,
    high          INTEGER NOT NULL
);
CREATE INDEX search_date_value ON search_date (resource_type, param, low, high);
CREATE INDEX search_date_owner ON search_date (resource_type, id);

CREATE TABLE search_reference (
    resource_type     TEXT NOT NULL,
    id                TEXT NOT NULL,
    patient_id        TEXT,
    param             TEXT NOT NULL,
    target_type       TEXT,
    target_id         TEXT,
    url               TEXT,
    identifier_system TEXT,
    identifier_value  TEXT
);
CREATE INDEX search_reference_target ON search_reference (target_id, target_type, param, resource_type);
CREATE INDEX search_reference_owner ON search_reference (resource_type, id);
CREATE INDEX search_reference_identifier ON search_reference (resource_type, param, identifier_value);

CREATE TABLE search_number (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    patient_id    TEXT,
    param         TEXT NOT NULL,
    value         REAL NOT NULL,
    low           REAL NOT NULL,
    high          REAL NOT NULL
);
CREATE INDEX search_number_value ON search_number (resource_type, param, value);
CREATE INDEX search_number_owner ON search_number (resource_type, id);

CREATE TABLE search_quantity (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    patient_id    TEXT,
    param         TEXT NOT NULL,
    value         REAL NOT NULL,
    low           REAL NOT NULL,
    high          REAL NOT NULL,
    system        TEXT,
    code          TEXT,
    unit          TEXT
);
CREATE INDEX search_quantity_value ON search_quantity (resource_type, param, value);
CREATE INDEX search_quantity_owner ON search_quantity (resource_type, id);

CREATE TABLE search_uri (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    patient_id    TEXT,
    param         TEXT NOT NULL,
    value         TEXT NOT NULL
);
CREATE INDEX search_uri_value ON search_uri (resource_type, param, value);
CREATE INDEX search_uri_owner ON search_uri (resource_type, id);
