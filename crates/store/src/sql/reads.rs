//! The statements that read records other than a search's own page: includes and
//! revincludes, a patient's compartment (`$everything`), history, and the break-glass grant
//! write. Every one that reads records takes the principal's visibility.

use carerecord_access::Visibility;
use carerecord_fhir::ResourceType;

use super::{Arg, Cursor, RESOURCE_COLUMNS, Statement, visibility};
use crate::error::StoreError;

/// Inserts a break-glass grant.
pub fn break_glass_statement(g: &crate::model::BreakGlassGrant) -> Statement {
    Statement {
        sql: "INSERT INTO break_glass (grant_id, principal_key, org_id, patient_id, reason_code, reason_text, granted_at, expires_at) \
              VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            .to_owned(),
        args: vec![
            Arg::Text(g.grant_id.clone()),
            Arg::Text(g.principal_key.clone()),
            Arg::Text(g.org_id.clone()),
            Arg::Text(g.patient_id.clone()),
            Arg::Text(g.reason_code.clone()),
            Arg::Text(g.reason_text.clone()),
            Arg::Int(g.granted_at),
            Arg::Int(g.expires_at),
        ],
    }
}

/// Binds each of `ids` and lists their placeholders, comma-separated.
fn text_list(ids: &[String], st: &mut Statement) -> String {
    ids.iter()
        .map(|id| st.text(id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resources that `keys` (of `source_type`) reference through `param` (`*` for any), optionally
/// only those of `target_type`.
pub fn include_statement(
    source_type: ResourceType,
    ids: &[String],
    param: &str,
    target_type: Option<ResourceType>,
    vis: &Visibility,
) -> Statement {
    let mut st = Statement::default();
    let s = st.text(source_type.as_str());
    let list = text_list(ids, &mut st);
    let mut sql = format!(
        "SELECT {RESOURCE_COLUMNS} FROM resources r WHERE r.deleted = FALSE AND EXISTS (SELECT 1 FROM search_reference f WHERE f.resource_type = {s} AND f.id IN ({list}) AND f.target_type = r.resource_type AND f.target_id = r.id"
    );
    if param != "*" {
        let p = super::param_rows("f", source_type, param, &mut st);
        sql.push_str(&format!(" AND {p}"));
    }
    if let Some(t) = target_type {
        let t = st.text(t.as_str());
        sql.push_str(&format!(" AND f.target_type = {t}"));
    }
    sql.push(')');
    visibility::and(&mut sql, "r", vis, &mut st);
    st.sql = sql;
    st
}

/// Resources of `source_type` that reference any of `ids` (of `target_type`) through `param`.
pub fn revinclude_statement(
    source_type: ResourceType,
    param: &str,
    target_type: ResourceType,
    ids: &[String],
    limit: u32,
    vis: &Visibility,
) -> Statement {
    let mut st = Statement::default();
    let s = st.text(source_type.as_str());
    let t = st.text(target_type.as_str());
    let list = text_list(ids, &mut st);
    let mut sql = format!(
        "SELECT {RESOURCE_COLUMNS} FROM resources r WHERE r.resource_type = {s} AND r.deleted = FALSE AND EXISTS (SELECT 1 FROM search_reference f WHERE f.resource_type = r.resource_type AND f.id = r.id AND f.target_type = {t} AND f.target_id IN ({list})"
    );
    if param != "*" {
        let p = super::param_rows("f", source_type, param, &mut st);
        sql.push_str(&format!(" AND {p}"));
    }
    sql.push(')');
    visibility::and(&mut sql, "r", vis, &mut st);
    let lim = super::limit(i64::from(limit));
    sql.push_str(&format!(" ORDER BY r.id LIMIT {lim}"));
    st.sql = sql;
    st
}

/// One page of a patient's compartment, ordered by type and id.
pub fn everything_statement(
    patient_id: &str,
    since: Option<i64>,
    types: &[ResourceType],
    count: u32,
    after: Option<(&str, &str)>,
    vis: &Visibility,
) -> Statement {
    let mut st = Statement::default();
    let p = st.text(patient_id);
    let mut sql = format!(
        "SELECT {RESOURCE_COLUMNS} FROM resources r WHERE r.patient_id = {p} AND r.deleted = FALSE"
    );
    if let Some(s) = since {
        let s = st.bind(Arg::Int(s));
        sql.push_str(&format!(" AND r.last_updated >= {s}"));
    }
    if !types.is_empty() {
        let list = types
            .iter()
            .map(|t| st.text(t.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        sql.push_str(&format!(" AND r.resource_type IN ({list})"));
    }
    if let Some((t, id)) = after {
        let a = st.text(t);
        let b = st.text(t);
        let c = st.text(id);
        sql.push_str(&format!(
            " AND (r.resource_type > {a} OR (r.resource_type = {b} AND r.id > {c}))"
        ));
    }
    visibility::and(&mut sql, "r", vis, &mut st);
    let lim = super::limit(i64::from(count) + 1);
    sql.push_str(&format!(" ORDER BY r.resource_type, r.id LIMIT {lim}"));
    st.sql = sql;
    st
}

/// Every version of every resource: the current rows and the superseded ones, which are kept
/// apart so a version's body is stored once (see `sql::write::versions_statements`). Both
/// databases push the outer `WHERE` into each arm, so a key or type seeks each table's index.
pub const ALL_VERSIONS: &str = "(SELECT resource_type, id, version_id, patient_id, last_updated, deleted, body, source_ods, sensitive FROM resources \
     UNION ALL SELECT resource_type, id, version_id, patient_id, last_updated, deleted, body, source_ods, sensitive FROM resource_history)";

/// One page of history, newest first.
pub fn history_statement(
    rt: Option<ResourceType>,
    id: Option<&str>,
    since: Option<i64>,
    count: u32,
    after: Option<&HistoryCursor>,
    vis: &Visibility,
) -> Statement {
    let mut st = Statement::default();
    let mut conds = history_filter(rt, id, since, vis, &mut st);
    if let Some(c) = after {
        // Newest first: strictly "older" in (last_updated, type, id, version) order.
        let a = st.bind(Arg::Int(c.last_updated));
        let b = st.bind(Arg::Int(c.last_updated));
        let t1 = st.text(&c.resource_type);
        let t2 = st.text(&c.resource_type);
        let i1 = st.text(&c.id);
        let t3 = st.text(&c.resource_type);
        let i2 = st.text(&c.id);
        let v = st.bind(Arg::Int(c.version_id));
        let lu = st.bind(Arg::Int(c.last_updated));
        conds.push(format!(
            "(h.last_updated < {a} OR (h.last_updated = {b} AND (h.resource_type < {t1} OR (h.resource_type = {t2} AND h.id < {i1}) OR (h.resource_type = {t3} AND h.id = {i2} AND h.version_id < {v}))) AND h.last_updated <= {lu})"
        ));
    }
    let lim = super::limit(i64::from(count) + 1);
    st.sql = format!(
        "SELECT h.resource_type, h.id, h.version_id, h.last_updated, h.deleted, h.body, h.patient_id FROM {ALL_VERSIONS} h WHERE {} ORDER BY h.last_updated DESC, h.resource_type DESC, h.id DESC, h.version_id DESC LIMIT {lim}",
        conds.join(" AND ")
    );
    st
}

fn history_filter(
    rt: Option<ResourceType>,
    id: Option<&str>,
    since: Option<i64>,
    vis: &Visibility,
    st: &mut Statement,
) -> Vec<String> {
    let mut conds = vec!["1 = 1".to_owned()];
    if let Some(t) = rt {
        conds.push(format!("h.resource_type = {}", st.text(t.as_str())));
    }
    if let Some(id) = id {
        conds.push(format!("h.id = {}", st.text(id)));
    }
    if let Some(s) = since {
        conds.push(format!("h.last_updated >= {}", st.bind(Arg::Int(s))));
    }
    if let Some(v) = visibility::condition("h", vis, visibility::Mode::Visible, st) {
        conds.push(v);
    }
    conds
}

/// How many versions a history request covers.
pub fn history_count_statement(
    rt: Option<ResourceType>,
    id: Option<&str>,
    since: Option<i64>,
    vis: &Visibility,
) -> Statement {
    let mut st = Statement::default();
    let conds = history_filter(rt, id, since, vis, &mut st);
    st.sql = format!(
        "SELECT COUNT(*) FROM {ALL_VERSIONS} h WHERE {}",
        conds.join(" AND ")
    );
    st
}

/// Where a history page stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryCursor {
    pub last_updated: i64,
    pub resource_type: String,
    pub id: String,
    pub version_id: i64,
}

impl HistoryCursor {
    pub fn encode(&self) -> String {
        Cursor {
            values: vec![
                Some(self.last_updated.to_string()),
                Some(self.resource_type.clone()),
                Some(self.version_id.to_string()),
            ],
            id: self.id.clone(),
        }
        .encode()
    }

    pub fn decode(s: &str) -> Result<HistoryCursor, StoreError> {
        let c = Cursor::decode(s)?;
        match c.values.as_slice() {
            [Some(lu), Some(rt), Some(v)] => Ok(HistoryCursor {
                last_updated: lu.parse().map_err(|_| StoreError::InvalidCursor)?,
                resource_type: rt.clone(),
                id: c.id,
                version_id: v.parse().map_err(|_| StoreError::InvalidCursor)?,
            }),
            _ => Err(StoreError::InvalidCursor),
        }
    }
}
