//! The audit trail's SQL, shared by both backends (same `$n` placeholder rules as the rest of
//! [`crate::sql`]). Entries live in `audit_log`; `audit_patient` lists, per entry, every Patient
//! it touched, so a person's access report is one indexed lookup even for searches that
//! returned several people. Both tables refuse UPDATE and DELETE (see the migrations).

use crate::audit::{
    AuditAction, AuditAgent, AuditEntry, AuditFilter, AuditOutcome, AuditRecord, BreakGlass,
    Channel, HASH_LEN, Hash, PrincipalKind, hash_hex, parse_hash,
};
use crate::error::StoreError;
use crate::model::Page;

use super::{Arg, Statement};

/// The newest entry's `seq, hash` (no row when the trail is empty). Read under the writer lock.
pub const HEAD_SQL: &str = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1";

/// The columns an audit row is read with: two integers (`seq`, `recorded`), then
/// [`AUDIT_TEXT_COLUMNS`] nullable text columns.
pub const AUDIT_COLUMNS: &str = "a.seq, a.recorded, a.action, a.outcome, a.rule, a.agent_kind, \
     a.agent_id, a.agent_name, a.agent_role, a.agent_org_id, a.agent_ods, a.on_behalf_of, \
     a.client_address, a.channel, a.purpose, a.break_glass_code, a.break_glass_text, a.patients, \
     a.resources, a.query, a.request_id, a.prev_hash, a.hash";

/// How many text columns follow `seq, recorded` in [`AUDIT_COLUMNS`].
pub const AUDIT_TEXT_COLUMNS: usize = 21;

/// Stands in for a stored hash that cannot be parsed.
const UNREADABLE: Hash = [0xff; HASH_LEN];

/// Rows per multi-row INSERT: well inside both databases' limits on bound values.
const ROWS_PER_INSERT: usize = 200;

/// One audit row as a backend reads it.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub seq: i64,
    pub recorded: i64,
    /// The [`AUDIT_TEXT_COLUMNS`] text columns, in order.
    pub text: Vec<Option<String>>,
}

fn list_text(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

fn opt(s: &Option<String>) -> Arg {
    match s {
        Some(s) => Arg::Text(s.clone()),
        None => Arg::Null,
    }
}

/// The INSERTs that store `entries` (already chained), in `audit_log` and `audit_patient`.
pub fn insert_statements(entries: &[AuditEntry]) -> Vec<Statement> {
    let mut out = Vec::new();
    for chunk in entries.chunks(ROWS_PER_INSERT) {
        let mut st = Statement::default();
        let mut rows = Vec::with_capacity(chunk.len());
        for e in chunk {
            let r = &e.record;
            let args = [
                Arg::Int(e.seq),
                Arg::Int(r.time),
                Arg::Text(r.action.as_str().to_owned()),
                Arg::Text(r.outcome.as_str().to_owned()),
                Arg::Text(r.rule.clone()),
                Arg::Text(r.agent.kind.as_str().to_owned()),
                Arg::Text(r.agent.id.clone()),
                opt(&r.agent.name),
                opt(&r.agent.role),
                opt(&r.agent.organisation_id),
                opt(&r.agent.ods_code),
                opt(&r.on_behalf_of),
                opt(&r.client_address),
                Arg::Text(r.channel.as_str().to_owned()),
                opt(&r.purpose_of_use),
                opt(&r.break_glass.as_ref().map(|b| b.code.clone())),
                opt(&r.break_glass.as_ref().map(|b| b.text.clone())),
                opt(&r.patient_ids.first().cloned()),
                Arg::Text(list_text(&r.patient_ids)),
                Arg::Text(list_text(&r.resources)),
                opt(&r.query),
                opt(&r.request_id),
                Arg::Text(hash_hex(&e.prev_hash)),
                Arg::Text(hash_hex(&e.hash)),
            ];
            let ps: Vec<String> = args.into_iter().map(|a| st.bind(a)).collect();
            rows.push(format!("({})", ps.join(", ")));
        }
        st.sql = format!(
            "INSERT INTO audit_log (seq, recorded, action, outcome, rule, agent_kind, agent_id, \
             agent_name, agent_role, agent_org_id, agent_ods, on_behalf_of, client_address, \
             channel, purpose, break_glass_code, break_glass_text, patient_id, patients, \
             resources, query, request_id, prev_hash, hash) VALUES {}",
            rows.join(", ")
        );
        out.push(st);
    }
    let links: Vec<(i64, &String)> = entries
        .iter()
        .flat_map(|e| {
            let mut ids: Vec<&String> = e.record.patient_ids.iter().collect();
            ids.sort();
            ids.dedup();
            ids.into_iter().map(move |p| (e.seq, p))
        })
        .collect();
    for chunk in links.chunks(ROWS_PER_INSERT * 4) {
        let mut st = Statement::default();
        let rows: Vec<String> = chunk
            .iter()
            .map(|(seq, p)| {
                let a = st.text(p);
                let b = st.bind(Arg::Int(*seq));
                format!("({a}, {b})")
            })
            .collect();
        st.sql = format!(
            "INSERT INTO audit_patient (patient_id, seq) VALUES {}",
            rows.join(", ")
        );
        out.push(st);
    }
    out
}

/// Up to `limit` entries after `after_seq`, oldest first (for verification).
pub fn entries_statement(after_seq: i64, limit: u32) -> Statement {
    let mut st = Statement::default();
    let a = st.bind(Arg::Int(after_seq));
    let l = super::limit(i64::from(limit));
    st.sql = format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_log a WHERE a.seq > {a} ORDER BY a.seq LIMIT {l}"
    );
    st
}

/// One entry by sequence number.
pub fn entry_statement(seq: i64) -> Statement {
    let mut st = Statement::default();
    let s = st.bind(Arg::Int(seq));
    st.sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log a WHERE a.seq = {s}");
    st
}

/// A page of entries matching `f`, newest first, before the cursor `before_seq`; fetches
/// `limit + 1` rows so the caller knows whether there is a next page.
pub fn search_statement(f: &AuditFilter, limit: u32, before_seq: Option<i64>) -> Statement {
    let mut st = Statement::default();
    let w = filter_where(&mut st, f, before_seq);
    let l = super::limit(i64::from(limit) + 1);
    st.sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log a{w} ORDER BY a.seq DESC LIMIT {l}");
    st
}

/// For each person the entries matching `f` touched, the time of the newest of them: rows of
/// `patient_id, recorded`. Reads two short columns per entry, never an entry's JSON lists of
/// resources (≈ 90 KB for a long record's page view), so "when did I last look at each of my
/// residents" costs the same however much each look read.
pub fn last_looks_statement(f: &AuditFilter) -> Statement {
    let mut st = Statement::default();
    let w = filter_where(&mut st, f, None);
    st.sql = format!(
        "SELECT ap.patient_id, MAX(a.recorded) FROM audit_log a \
         JOIN audit_patient ap ON ap.seq = a.seq{w} GROUP BY ap.patient_id"
    );
    st
}

/// The `WHERE` clause (with its leading space, or empty) of entries matching `f` with
/// sequence numbers below `before_seq`, over `audit_log a`.
fn filter_where(st: &mut Statement, f: &AuditFilter, before_seq: Option<i64>) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(p) = &f.patient_id {
        let p = st.text(p);
        parts.push(format!(
            "a.seq IN (SELECT ap.seq FROM audit_patient ap WHERE ap.patient_id = {p})"
        ));
    }
    if let Some(a) = &f.agent_id {
        let a = st.text(a);
        parts.push(format!("a.agent_id = {a}"));
    }
    if let Some(o) = &f.organisation {
        let x = st.text(o);
        let y = st.text(o);
        parts.push(format!("(a.agent_org_id = {x} OR a.agent_ods = {y})"));
    }
    if let Some(t) = f.since {
        let t = st.bind(Arg::Int(t));
        parts.push(format!("a.recorded >= {t}"));
    }
    if let Some(t) = f.before {
        let t = st.bind(Arg::Int(t));
        parts.push(format!("a.recorded < {t}"));
    }
    if let Some(o) = f.outcome {
        let o = st.text(o.as_str());
        parts.push(format!("a.outcome = {o}"));
    }
    if let Some(x) = f.action {
        let x = st.text(x.as_str());
        parts.push(format!("a.action = {x}"));
    }
    if let Some(r) = &f.rule {
        let r = st.text(r);
        parts.push(format!("a.rule = {r}"));
    }
    if let Some(s) = f.seq {
        let s = st.bind(Arg::Int(s));
        parts.push(format!("a.seq = {s}"));
    }
    if let Some(sc) = &f.scope {
        let org = st.text(&sc.org_id);
        let org2 = st.text(&sc.org_id);
        let cut = st.bind(Arg::Int(sc.encounter_cutoff));
        let now = st.bind(Arg::Int(sc.now));
        parts.push(format!(
            "(a.agent_org_id = {org} OR (SELECT 1 FROM audit_patient ap WHERE ap.seq = a.seq AND \
             (SELECT 1 FROM care_relationships c WHERE c.patient_id = ap.patient_id AND c.org_id = {org2} \
              AND c.ends > (CASE WHEN c.kind = 'encounter' THEN {cut} ELSE {now} END) LIMIT 1) IS NOT NULL LIMIT 1) IS NOT NULL)"
        ));
    }
    if let Some(c) = before_seq {
        let c = st.bind(Arg::Int(c));
        parts.push(format!("a.seq < {c}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", parts.join(" AND "))
    }
}

/// [`last_looks_statement`] run over `exec`: person → the newest matching entry's time (µs).
pub async fn last_looks(
    exec: &mut dyn crate::engine::SqlExec,
    f: &AuditFilter,
) -> Result<Vec<(String, i64)>, StoreError> {
    use crate::cells::{Cols, Kind};
    exec.cells(&last_looks_statement(f), &[Kind::Text, Kind::Int])
        .await?
        .into_iter()
        .map(|row| {
            let mut c = Cols(row.into_iter());
            Ok((c.text()?, c.int()?))
        })
        .collect()
}

/// The page from rows read with [`search_statement`] (`limit + 1` at most).
pub fn into_page(mut items: Vec<AuditEntry>, limit: u32) -> Page<AuditEntry> {
    let mut next_cursor = None;
    if items.len() > limit as usize {
        items.truncate(limit as usize);
        next_cursor = items.last().map(|e| encode_cursor(e.seq));
    }
    Page {
        items,
        next_cursor,
        total: None,
        withheld: 0,
    }
}

/// The cursor of the page after the one ending at `seq`.
pub fn encode_cursor(seq: i64) -> String {
    format!("a{seq}")
}

pub fn decode_cursor(c: &str) -> Result<i64, StoreError> {
    c.strip_prefix('a')
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|s| *s > 0)
        .ok_or(StoreError::InvalidCursor)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("unreadable audit row: {what}"))
}

/// For verification: a row that cannot be read as an entry (a code changed to one carerecord
/// never writes, a list that is no longer JSON) is still the entry at its sequence number, one
/// whose hash cannot match — so `verify` reports it as changed instead of failing to read the
/// trail.
pub fn decode_row_for_verify(row: AuditRow) -> AuditEntry {
    let (seq, recorded) = (row.seq, row.recorded);
    decode_row(row).unwrap_or_else(|_| AuditEntry {
        seq,
        record: AuditRecord::new(
            recorded,
            AuditAction::Admin,
            AuditOutcome::Error,
            "unreadable",
            AuditAgent {
                kind: PrincipalKind::System,
                id: String::new(),
                name: None,
                role: None,
                organisation_id: None,
                ods_code: None,
            },
            Channel::Api,
        ),
        prev_hash: UNREADABLE,
        hash: UNREADABLE,
    })
}

/// Builds an entry from a row read with [`AUDIT_COLUMNS`].
pub fn decode_row(row: AuditRow) -> Result<AuditEntry, StoreError> {
    if row.text.len() != AUDIT_TEXT_COLUMNS {
        return Err(corrupt("wrong number of columns"));
    }
    let mut t = row.text.into_iter();
    let mut next = || t.next().flatten();
    let req = |v: Option<String>, what: &str| v.ok_or_else(|| corrupt(what));
    let list = |v: Option<String>, what: &str| -> Result<Vec<String>, StoreError> {
        serde_json::from_str(&req(v, what)?).map_err(|_| corrupt(what))
    };
    let action: AuditAction = req(next(), "action")?.parse()?;
    let outcome: AuditOutcome = req(next(), "outcome")?.parse()?;
    let rule = req(next(), "rule")?;
    let kind: PrincipalKind = req(next(), "agent_kind")?.parse()?;
    let agent = AuditAgent {
        kind,
        id: req(next(), "agent_id")?,
        name: next(),
        role: next(),
        organisation_id: next(),
        ods_code: next(),
    };
    let on_behalf_of = next();
    let client_address = next();
    let channel: Channel = req(next(), "channel")?.parse()?;
    let purpose_of_use = next();
    let break_glass = match (next(), next()) {
        (Some(code), text) => Some(BreakGlass {
            code,
            text: text.unwrap_or_default(),
        }),
        (None, _) => None,
    };
    let patient_ids = list(next(), "patients")?;
    let resources = list(next(), "resources")?;
    let query = next();
    let request_id = next();
    // A hash that is not even hex still reads, as a value no HMAC produces in practice, so
    // that verification reports the entry as changed rather than failing to read the trail.
    let prev_hash = next().and_then(|h| parse_hash(&h)).unwrap_or(UNREADABLE);
    let hash = next().and_then(|h| parse_hash(&h)).unwrap_or(UNREADABLE);
    Ok(AuditEntry {
        seq: row.seq,
        record: AuditRecord {
            time: row.recorded,
            action,
            outcome,
            rule,
            agent,
            on_behalf_of,
            client_address,
            channel,
            purpose_of_use,
            break_glass,
            patient_ids,
            resources,
            query,
            request_id,
        },
        prev_hash,
        hash,
    })
}
