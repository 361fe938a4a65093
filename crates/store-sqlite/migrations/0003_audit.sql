-- The audit trail: append-only, hash-chained (carerecord-store's `audit` module, ADR 0003).
-- `seq` is assigned by the store under its single writer lock: 1, 2, 3, … without gaps.
-- `patient_id` is the first Patient touched (the column a distributed store would place the
-- row by); `patients` and `resources` are JSON arrays of every one. Hashes are lower-case hex.
CREATE TABLE audit_log (
    seq              INTEGER PRIMARY KEY,
    recorded         INTEGER NOT NULL, -- microseconds since the Unix epoch
    action           TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    rule             TEXT NOT NULL,
    agent_kind       TEXT NOT NULL,
    agent_id         TEXT NOT NULL,
    agent_name       TEXT,
    agent_role       TEXT,
    agent_org_id     TEXT,
    agent_ods        TEXT,
    on_behalf_of     TEXT,
    client_address   TEXT,
    channel          TEXT NOT NULL,
    purpose          TEXT,
    break_glass_code TEXT,
    break_glass_text TEXT,
    patient_id       TEXT,
    patients         TEXT NOT NULL,
    resources        TEXT NOT NULL,
    query            TEXT,
    request_id       TEXT,
    prev_hash        TEXT NOT NULL,
    hash             TEXT NOT NULL
);
CREATE INDEX audit_log_agent ON audit_log (agent_id, seq);
CREATE INDEX audit_log_org ON audit_log (agent_org_id, seq);
CREATE INDEX audit_log_ods ON audit_log (agent_ods, seq);
CREATE INDEX audit_log_recorded ON audit_log (recorded);
CREATE INDEX audit_log_outcome ON audit_log (outcome, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);

-- Every Patient each entry touched: a person's access report is one index range.
CREATE TABLE audit_patient (
    patient_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (patient_id, seq)
);

-- Nothing in carerecord changes or removes an entry, and these make sure of it: an UPDATE or
-- DELETE through SQLite fails. (Someone with the file can drop them; the hash chain is what
-- shows that, see `carerecord audit verify`.)
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only: they cannot be changed');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only: they cannot be deleted');
END;
CREATE TRIGGER audit_patient_no_update BEFORE UPDATE ON audit_patient
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only: they cannot be changed');
END;
CREATE TRIGGER audit_patient_no_delete BEFORE DELETE ON audit_patient
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only: they cannot be deleted');
END;
