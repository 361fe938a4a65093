-- The audit trail: append-only, hash-chained (carerecord-store's `audit` module, ADR 0003).
-- The same logical table as SQLite's. `seq` is assigned by the store while it holds the chain's
-- transaction-level advisory lock: 1, 2, 3, … without gaps (a SEQUENCE would leave gaps on
-- rollback, and gaps are what verification reports as deletions).
-- `patient_id` is the first Patient touched; `patients` and `resources` are JSON arrays of
-- every one. Hashes are lower-case hex.
--
-- On Citus this table and audit_patient stay local tables on the coordinator, not distributed
-- by patient_id: the chain is one global order, appended under one lock (docs/distribution.md).
CREATE TABLE audit_log (
    seq              BIGINT PRIMARY KEY,
    recorded         BIGINT NOT NULL, -- microseconds since the Unix epoch
    action           TEXT COLLATE "C" NOT NULL,
    outcome          TEXT COLLATE "C" NOT NULL,
    rule             TEXT NOT NULL,
    agent_kind       TEXT COLLATE "C" NOT NULL,
    agent_id         TEXT COLLATE "C" NOT NULL,
    agent_name       TEXT,
    agent_role       TEXT COLLATE "C",
    agent_org_id     TEXT COLLATE "C",
    agent_ods        TEXT COLLATE "C",
    on_behalf_of     TEXT,
    client_address   TEXT,
    channel          TEXT COLLATE "C" NOT NULL,
    purpose          TEXT COLLATE "C",
    break_glass_code TEXT,
    break_glass_text TEXT,
    patient_id       TEXT COLLATE "C",
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
    patient_id TEXT COLLATE "C" NOT NULL,
    seq        BIGINT NOT NULL,
    PRIMARY KEY (patient_id, seq)
);

-- Nothing in carerecord changes or removes an entry, and these make sure of it: UPDATE,
-- DELETE and TRUNCATE fail for every role the application connects as. (A superuser can
-- disable them; the hash chain is what shows that, see `carerecord audit verify`.)
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_patient_append_only BEFORE UPDATE OR DELETE ON audit_patient
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_patient_no_truncate BEFORE TRUNCATE ON audit_patient
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
