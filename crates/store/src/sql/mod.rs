//! Search compiled to SQL, once for both backends.
//!
//! The statements use `$1, $2, …` placeholders, numbered in order of appearance and each used
//! once, which PostgreSQL and SQLite both read the same way. The most selective criterion
//! drives the search (`r.id IN (…its index rows…)`); every other criterion is a per-resource
//! probe of one index table ([`has_row`]); sorting and keyset paging work on computed sort
//! columns in an outer query.

use carerecord_fhir::ResourceType;
use carerecord_search::query::{
    Criterion, DateValue, NumberValue, Prefix, QuantityValue, ReferenceValue, SearchQuery, SortKey,
    StringMode, TokenSystem, TokenValue, UriMode,
};
use carerecord_search::registry::{ParamKind, Stored, lookup, stored};

use carerecord_access::Visibility;

use crate::error::StoreError;

pub mod audit;
pub mod break_glass;
pub mod directory;
mod reads;
pub mod visibility;
mod write;
pub use reads::{
    ALL_VERSIONS, HistoryCursor, break_glass_statement, everything_statement,
    history_count_statement, history_statement, include_statement, revinclude_statement,
};
pub use write::{
    INDEX_TABLES, WriteStatement, clear_index_statements, deletion_statements, versions_statements,
};

/// A bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Text(String),
    Int(i64),
    Real(f64),
    Bool(bool),
    /// Raw bytes (a dead letter as received, an ACK as sent).
    Bytes(Vec<u8>),
    Null,
}

/// SQL text with its arguments.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Statement {
    pub sql: String,
    pub args: Vec<Arg>,
}

impl Statement {
    pub(crate) fn bind(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    fn text(&mut self, s: &str) -> String {
        self.bind(Arg::Text(s.to_owned()))
    }
}

/// A `LIMIT`'s count, written into the statement's text rather than bound. The bundled SQLite
/// (3.51) lets its planner use the value of a bound `LIMIT`, so binding one marks the prepared
/// statement stale and every execution prepares it again — parsing, planning and generating
/// code each time, which cost more than running an indexed page, and more the longer the
/// statement (a scoped principal's). A literal keeps the cached statement. The count is an
/// integer the store computes, never text from a request, and takes few values.
pub(crate) fn limit(n: i64) -> String {
    n.to_string()
}

/// The highest string in bytewise order that index text can be compared with: used as the
/// open upper end of a starts-with range (both backends compare text bytewise: SQLite's BINARY
/// collation, PostgreSQL columns declared `COLLATE "C"`).
const TEXT_MAX: &str = "\u{10FFFF}";

/// Columns every search row returns, in order: `resource_type, id, version_id, last_updated,
/// deleted, body`, then one `TEXT` column per sort key (`s0, s1, …`) for the cursor.
pub const RESOURCE_COLUMNS: &str =
    "r.resource_type, r.id, r.version_id, r.last_updated, r.deleted, r.body, r.patient_id";

/// A compiled search page.
#[derive(Debug, Clone)]
pub struct PageStatement {
    pub statement: Statement,
    /// How many sort-value columns follow the resource columns.
    pub sort_columns: usize,
}

/// The value kinds of sort columns, to bind a cursor's values back with the right type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortType {
    Text,
    Int,
    Real,
}

struct CompiledSort {
    expr: String,
    ty: SortType,
    descending: bool,
}

/// The `WHERE` clause (without `WHERE`) matching current resources of the query's type.
///
/// With `mode` [`visibility::Mode::Visible`] it matches what `vis` lets the principal see; with
/// `Withheld`, the matches withheld from them only because they are sensitive.
pub fn where_clause(
    q: &SearchQuery,
    vis: &Visibility,
    mode: visibility::Mode,
    st: &mut Statement,
) -> Result<String, StoreError> {
    let mut w = criteria_clause(q, vis, st)?;
    if let Some(v) = visibility::condition("r", vis, mode, st) {
        w.push_str(" AND ");
        w.push_str(&v);
    }
    Ok(w)
}

/// The search's own criteria over `resources r`, without the visibility of the rows it
/// matches (chained criteria still see only what `vis` allows).
fn criteria_clause(
    q: &SearchQuery,
    vis: &Visibility,
    st: &mut Statement,
) -> Result<String, StoreError> {
    let rt = st.text(q.resource_type.as_str());
    let mut parts = vec![
        format!("r.resource_type = {rt}"),
        "r.deleted = FALSE".to_owned(),
    ];
    // The most selective criterion drives (an `IN` over its index rows); the others are tested
    // on the resources it yields. `_id` drives by itself through the primary key.
    let has_id = q
        .criteria
        .iter()
        .any(|c| matches!(c, Criterion::Id { negate: false, .. }));
    let driver = if has_id {
        None
    } else {
        q.criteria
            .iter()
            .enumerate()
            .filter_map(|(i, c)| driving_rank(c).map(|r| (r, i)))
            .min()
            .map(|(_, i)| i)
    };
    for (i, c) in q.criteria.iter().enumerate() {
        if Some(i) == driver {
            let sub = driving_subquery(c, q.resource_type, vis, st)?;
            parts.push(format!("r.id IN ({sub})"));
        } else {
            parts.push(criterion(
                c,
                q.resource_type,
                "r.resource_type",
                "r.id",
                vis,
                st,
            )?);
        }
    }
    Ok(parts.join(" AND "))
}

/// `SELECT count(*)` of the search's matches.
pub fn count_statement(
    q: &SearchQuery,
    vis: &Visibility,
    mode: visibility::Mode,
) -> Result<Statement, StoreError> {
    let mut st = Statement::default();
    let w = where_clause(q, vis, mode, &mut st)?;
    st.sql = format!("SELECT COUNT(*) FROM resources r WHERE {w}");
    Ok(st)
}

/// What a scoped principal's first page counts, in one row:
///
/// 1. the matches `vis` shows;
/// 2. the matches that *may* be withheld from it — sensitive, another organisation's
///    ([`visibility::Mode::MaybeWithheld`], no care probes); when not zero the caller asks the
///    exact number separately;
/// 3. when the search is about one person (`about`) and `vis` has not been told whether they
///    are in care: the matches that are someone else's (else 0);
/// 4. that person's answer, computed once in `FROM` (1 or 0; `NULL` when nothing matches; -1
///    when not asked), for the page statement that follows.
///
/// With `alone`, other persons' rows are refused without their probes; the caller asks again
/// without it when column 3 is not zero. PostgreSQL starts every subquery of a plan at each
/// execution, so the statement carries as few as it can.
pub fn counts_statement(
    q: &SearchQuery,
    vis: &Visibility,
    about: Option<&str>,
    alone: bool,
) -> Result<Statement, StoreError> {
    let mut st = Statement::default();
    let asked = match (vis, about) {
        (Visibility::Scoped(s), Some(p)) if s.known.is_none() => Some((s, p)),
        _ => None,
    };
    let answered = asked.map(|(_, patient)| visibility::Answered {
        patient,
        expr: "known.answer > 0",
        alone,
    });
    let visible =
        visibility::condition_answered("r", vis, visibility::Mode::Visible, &mut st, answered)
            .unwrap_or_else(|| "TRUE".to_owned());
    let maybe = visibility::condition("r", vis, visibility::Mode::MaybeWithheld, &mut st)
        .unwrap_or_else(|| "FALSE".to_owned());
    let others = match asked {
        Some((_, patient)) => {
            let p = st.text(patient);
            format!(
                "COALESCE(SUM(CASE WHEN r.patient_id IS NOT NULL AND r.patient_id <> {p} THEN 1 ELSE 0 END), 0)"
            )
        }
        None => "CAST(0 AS BIGINT)".to_owned(),
    };
    let (answer, from) = match asked {
        Some((s, patient)) => {
            let ask = visibility::ask(patient, s, &mut st);
            (
                "MAX(known.answer)".to_owned(),
                // A one-row derived table joined first: both databases compute it once (the
                // LIMIT keeps PostgreSQL from pulling it up into every use).
                format!("(SELECT ({ask}) AS answer LIMIT 1) known CROSS JOIN resources r"),
            )
        }
        None => ("CAST(-1 AS BIGINT)".to_owned(), "resources r".to_owned()),
    };
    let w = criteria_clause(q, vis, &mut st)?;
    st.sql = format!(
        "SELECT COALESCE(SUM(CASE WHEN {visible} THEN 1 ELSE 0 END), 0), \
         COALESCE(SUM(CASE WHEN {maybe} THEN 1 ELSE 0 END), 0), {others}, {answer} FROM {from} WHERE {w}"
    );
    Ok(st)
}

/// `SELECT resource_type, id` of up to `limit` matches (conditional interactions).
pub fn keys_statement(
    q: &SearchQuery,
    limit: u32,
    vis: &Visibility,
) -> Result<Statement, StoreError> {
    let mut st = Statement::default();
    let w = where_clause(q, vis, visibility::Mode::Visible, &mut st)?;
    let lim = self::limit(i64::from(limit));
    st.sql = format!("SELECT r.resource_type, r.id FROM resources r WHERE {w} LIMIT {lim}");
    Ok(st)
}

/// One page of matches, sorted by the query's `_sort` keys then id, after `cursor`.
/// Fetches `page_size + 1` rows so the caller knows whether a next page exists.
pub fn page_statement(
    q: &SearchQuery,
    page_size: u32,
    cursor: Option<&Cursor>,
    vis: &Visibility,
) -> Result<PageStatement, StoreError> {
    let mut st = Statement::default();
    let sorts = q
        .sort
        .iter()
        .map(|k| sort_expr(q.resource_type, k, &mut st))
        .collect::<Result<Vec<_>, _>>()?;
    let w = where_clause(q, vis, visibility::Mode::Visible, &mut st)?;
    let mut inner_cols = vec![RESOURCE_COLUMNS.to_owned()];
    for (i, s) in sorts.iter().enumerate() {
        inner_cols.push(format!("{} AS s{i}", s.expr));
    }
    let mut outer_where = String::new();
    if let Some(c) = cursor {
        if c.values.len() != sorts.len() {
            return Err(StoreError::InvalidCursor);
        }
        outer_where = format!(" WHERE {}", keyset_condition(&sorts, c, &mut st)?);
    }
    let mut order: Vec<String> = sorts
        .iter()
        .enumerate()
        .map(|(i, s)| format!("x.s{i} {}", if s.descending { "DESC" } else { "ASC" }))
        .collect();
    order.push("x.id ASC".to_owned());
    let lim = limit(i64::from(page_size) + 1);
    let mut outer_cols = vec![
        "x.resource_type, x.id, x.version_id, x.last_updated, x.deleted, x.body, x.patient_id"
            .to_owned(),
    ];
    for (i, s) in sorts.iter().enumerate() {
        // Real values are returned as they are: SQLite's CAST to TEXT keeps only 15 significant
        // digits, which would make the cursor's value differ from the row's (a row repeated or
        // skipped). The backend writes them as text itself (see `SqlExec::resources`).
        if s.ty == SortType::Real {
            outer_cols.push(format!("x.s{i}"));
        } else {
            outer_cols.push(format!("CAST(x.s{i} AS TEXT)"));
        }
    }
    st.sql = format!(
        "SELECT {} FROM (SELECT {} FROM resources r WHERE {w}) x{outer_where} ORDER BY {} LIMIT {lim}",
        outer_cols.join(", "),
        inner_cols.join(", "),
        order.join(", "),
    );
    Ok(PageStatement {
        statement: st,
        sort_columns: sorts.len(),
    })
}

/// Where the previous page stopped: its last row's sort values and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub values: Vec<Option<String>>,
    pub id: String,
}

impl Cursor {
    /// An opaque, URL-safe form.
    pub fn encode(&self) -> String {
        let mut parts: Vec<String> = self
            .values
            .iter()
            .map(|v| match v {
                Some(s) => format!("v{}", hex(s)),
                None => "n".to_owned(),
            })
            .collect();
        parts.push(format!("i{}", hex(&self.id)));
        parts.join(".")
    }

    pub fn decode(s: &str) -> Result<Cursor, StoreError> {
        let mut items: Vec<&str> = s.split('.').collect();
        let id = items
            .pop()
            .and_then(|last| last.strip_prefix('i'))
            .and_then(unhex)
            .ok_or(StoreError::InvalidCursor)?;
        let values = items
            .into_iter()
            .map(|p| {
                if p == "n" {
                    Ok(None)
                } else {
                    p.strip_prefix('v')
                        .and_then(unhex)
                        .map(Some)
                        .ok_or(StoreError::InvalidCursor)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Cursor { values, id })
    }
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

fn keyset_condition(
    sorts: &[CompiledSort],
    c: &Cursor,
    st: &mut Statement,
) -> Result<String, StoreError> {
    // (s0 > v0) OR (s0 = v0 AND s1 > v1) OR … OR (all equal AND id > last_id), with `<` for
    // descending keys. Missing sort values were coalesced to a sentinel, so never NULL here.
    let mut bound = Vec::with_capacity(sorts.len());
    for (s, v) in sorts.iter().zip(&c.values) {
        let v = v.as_deref().ok_or(StoreError::InvalidCursor)?;
        let arg = match s.ty {
            SortType::Text => Arg::Text(v.to_owned()),
            SortType::Int => Arg::Int(v.parse().map_err(|_| StoreError::InvalidCursor)?),
            SortType::Real => Arg::Real(v.parse().map_err(|_| StoreError::InvalidCursor)?),
        };
        bound.push(arg);
    }
    let mut disjuncts = Vec::new();
    for i in 0..=sorts.len() {
        let mut conj = Vec::new();
        for (j, arg) in bound.iter().enumerate().take(i) {
            let p = st.bind(arg.clone());
            conj.push(format!("x.s{j} = {p}"));
        }
        if i < sorts.len() {
            let p = st.bind(bound[i].clone());
            let op = if sorts[i].descending { "<" } else { ">" };
            conj.push(format!("x.s{i} {op} {p}"));
        } else {
            let p = st.text(&c.id);
            conj.push(format!("x.id > {p}"));
        }
        disjuncts.push(format!("({})", conj.join(" AND ")));
    }
    Ok(format!("({})", disjuncts.join(" OR ")))
}

fn sort_expr(
    rt: ResourceType,
    key: &SortKey,
    st: &mut Statement,
) -> Result<CompiledSort, StoreError> {
    let (expr, ty) = match key.param.as_str() {
        "_id" => ("r.id".to_owned(), SortType::Text),
        "_lastUpdated" => ("r.last_updated".to_owned(), SortType::Int),
        code => {
            let def = lookup(rt, code).ok_or_else(|| {
                StoreError::UnsupportedSearch(format!("cannot sort by unknown parameter '{code}'"))
            })?;
            let agg = if key.descending { "MAX" } else { "MIN" };
            let (table, col, ty) = match def.kind {
                ParamKind::Date => ("search_date", "low", SortType::Int),
                ParamKind::String => ("search_string", "normalized", SortType::Text),
                ParamKind::Token => ("search_token", "code", SortType::Text),
                ParamKind::Number => ("search_number", "value", SortType::Real),
                ParamKind::Quantity => ("search_quantity", "value", SortType::Real),
                ParamKind::Reference => ("search_reference", "target_id", SortType::Text),
                ParamKind::Uri => ("search_uri", "value", SortType::Text),
                ParamKind::Composite | ParamKind::Special => {
                    return Err(StoreError::UnsupportedSearch(format!(
                        "cannot sort by the {} parameter '{code}'",
                        def.kind.as_str()
                    )));
                }
            };
            let p = param_rows("i", rt, code, st);
            // Resources without a value sort last in either direction.
            let sentinel = match (ty, key.descending) {
                (SortType::Int, false) => i64::MAX.to_string(),
                (SortType::Int, true) => i64::MIN.to_string(),
                (SortType::Real, false) => "1e308".to_owned(),
                (SortType::Real, true) => "-1e308".to_owned(),
                (SortType::Text, false) => format!("'{TEXT_MAX}'"),
                (SortType::Text, true) => "''".to_owned(),
            };
            // The aggregate is over an expression, not the bare column, so that SQLite does not
            // answer MIN/MAX by walking the value index of every resource's rows in order; the
            // lookup must seek this resource's rows through the owner index.
            let value = match ty {
                SortType::Text => format!("(i.{col} || '')"),
                SortType::Int | SortType::Real => format!("(i.{col} + 0)"),
            };
            (
                format!(
                    "COALESCE((SELECT {agg}({value}) FROM {table} i WHERE i.resource_type = r.resource_type AND i.id = r.id AND {p}), {sentinel})"
                ),
                ty,
            )
        }
    };
    Ok(CompiledSort {
        expr,
        ty,
        descending: key.descending,
    })
}

/// One criterion as a boolean SQL expression about the resource `(type_expr, id_expr)`.
/// A criterion that is a match on one index table: the table, the condition choosing the
/// parameter's rows (alias `i`, see [`param_rows`]), the condition on the row's values, and
/// whether the match is negated (`:not`).
struct IndexMatch {
    table: &'static str,
    rows: String,
    cond: String,
    negate: bool,
}

/// `{alias}.param …`: the condition choosing the index rows that hold parameter `code` of `rt`
/// — its own, or those of the parameters it is stored as (`registry::Stored`: `combo-code` is
/// searched in the `code` and `component-code` rows, `patient` in the `subject` rows that point
/// to a Patient).
pub(crate) fn param_rows(alias: &str, rt: ResourceType, code: &str, st: &mut Statement) -> String {
    match stored(rt, code) {
        Stored::Own => format!("{alias}.param = {}", st.text(code)),
        Stored::As(codes) => {
            let list: Vec<String> = codes.iter().map(|c| st.text(c)).collect();
            match list.as_slice() {
                [one] => format!("{alias}.param = {one}"),
                _ => format!("{alias}.param IN ({})", list.join(", ")),
            }
        }
        Stored::Resolved { param, target_type } => {
            // `IN` first, so that the database seeks both codes in its index, then keeps the
            // other's rows only where they point to the target type. (Each placeholder is used
            // once: SQLite numbers `$n` parameters by first appearance.)
            let own = st.text(code);
            let other = st.text(param);
            let own_again = st.text(code);
            let tt = st.text(target_type);
            format!(
                "({alias}.param IN ({own}, {other}) AND ({alias}.param = {own_again} OR {alias}.target_type = {tt}))"
            )
        }
    }
}

/// Whether `c` is a plain match on one index table (so it can be written as a probe of that
/// table, or drive the search as an `IN` subquery).
fn is_index_match(c: &Criterion) -> bool {
    match c {
        Criterion::Date { param, .. } => param != "_lastUpdated",
        Criterion::Token { .. }
        | Criterion::TokenText { .. }
        | Criterion::String { .. }
        | Criterion::Number { .. }
        | Criterion::Quantity { .. }
        | Criterion::Reference { .. }
        | Criterion::ReferenceIdentifier { .. }
        | Criterion::Uri { .. } => true,
        Criterion::Id { .. } | Criterion::Chain { .. } | Criterion::Missing { .. } => false,
    }
}

/// Binds the parameter's rows, then the value condition, of an index-table criterion about a
/// resource of type `rt`.
fn index_match(c: &Criterion, rt: ResourceType, st: &mut Statement) -> Option<IndexMatch> {
    let m = |table, param: &str, st: &mut Statement| (table, param_rows("i", rt, param, st));
    let (table, param, cond, negate) = match c {
        Criterion::Token {
            param,
            values,
            negate,
        } => {
            let (t, p) = m("search_token", param, st);
            (t, p, or(values.iter().map(|v| token_cond(v, st))), *negate)
        }
        Criterion::TokenText { param, values } => {
            let (t, p) = m("search_token", param, st);
            let cond = or(values.iter().map(|v| starts_with("i.text", v, st)));
            (t, p, cond, false)
        }
        Criterion::String {
            param,
            mode,
            values,
        } => {
            let (t, p) = m("search_string", param, st);
            let cond = or(values.iter().map(|v| match mode {
                StringMode::StartsWith => starts_with("i.normalized", v, st),
                StringMode::Exact => format!("i.exact = {}", st.text(v)),
                StringMode::Contains => {
                    let pat = st.text(&format!("%{}%", escape_like(v)));
                    format!("i.normalized LIKE {pat} ESCAPE '\\'")
                }
            }));
            (t, p, cond, false)
        }
        Criterion::Date { param, values } if param != "_lastUpdated" => {
            let (t, p) = m("search_date", param, st);
            let cond = or(values.iter().map(|v| date_cond(v, "i.low", "i.high", st)));
            (t, p, cond, false)
        }
        Criterion::Number { param, values } => {
            let (t, p) = m("search_number", param, st);
            (t, p, or(values.iter().map(|v| number_cond(v, st))), false)
        }
        Criterion::Quantity { param, values } => {
            let (t, p) = m("search_quantity", param, st);
            (t, p, or(values.iter().map(|v| quantity_cond(v, st))), false)
        }
        Criterion::Reference { param, values } => {
            let (t, p) = m("search_reference", param, st);
            (
                t,
                p,
                or(values.iter().map(|v| reference_cond(v, st))),
                false,
            )
        }
        Criterion::ReferenceIdentifier { param, values } => {
            let (t, p) = m("search_reference", param, st);
            (
                t,
                p,
                or(values.iter().map(|v| identifier_cond(v, st))),
                false,
            )
        }
        Criterion::Uri {
            param,
            mode,
            values,
        } => {
            let (t, p) = m("search_uri", param, st);
            let cond = or(values.iter().map(|v| match mode {
                UriMode::Exact => format!("i.value = {}", st.text(v)),
                UriMode::Below => {
                    let a = st.text(v);
                    let b = st.text(&format!("{}/%", escape_like(v)));
                    format!("(i.value = {a} OR i.value LIKE {b} ESCAPE '\\')")
                }
                UriMode::Above => {
                    let a = st.text(v);
                    format!("substr({a}, 1, length(i.value)) = i.value")
                }
            }));
            (t, p, cond, false)
        }
        _ => return None,
    };
    Some(IndexMatch {
        table,
        rows: param,
        cond,
        negate,
    })
}

/// How well a criterion narrows a search when the database starts from it: lower is better;
/// `None` for criteria that cannot drive (negations, `:missing`, `_lastUpdated`, `:contains`).
fn driving_rank(c: &Criterion) -> Option<u8> {
    match c {
        Criterion::Reference { .. } => Some(1),
        Criterion::ReferenceIdentifier { .. } => Some(2),
        Criterion::Chain { inner, .. } => driving_rank(inner).map(|_| 3),
        Criterion::Token { negate: false, .. } => Some(4),
        Criterion::String { mode, .. } if *mode != StringMode::Contains => Some(5),
        Criterion::Uri { .. } => Some(6),
        Criterion::Date { param, .. } if param != "_lastUpdated" => Some(7),
        Criterion::Quantity { .. } | Criterion::Number { .. } => Some(8),
        Criterion::TokenText { .. } => Some(9),
        _ => None,
    }
}

/// `SELECT i.id FROM <index table> …` listing the ids of `rt` resources that match `c`, for a
/// criterion with a [`driving_rank`]. Starting from it, the database reads only the index rows
/// that match instead of testing every resource of the type.
fn driving_subquery(
    c: &Criterion,
    rt: ResourceType,
    vis: &Visibility,
    st: &mut Statement,
) -> Result<String, StoreError> {
    let t = st.text(rt.as_str());
    if let Criterion::Chain {
        param,
        target_type,
        inner,
    } = c
    {
        let p = param_rows("c", rt, param, st);
        let tt = st.text(target_type.as_str());
        let inner_ids = driving_subquery(inner, *target_type, vis, st)?;
        // Only through referenced resources the principal may see (see `criterion`).
        let guard = match vis {
            Visibility::All => String::new(),
            Visibility::Scoped(_) => {
                let tt2 = st.text(target_type.as_str());
                let v = visibility::condition("t", vis, visibility::Mode::Visible, st)
                    .unwrap_or_else(|| "1 = 1".to_owned());
                format!(
                    " AND (SELECT 1 FROM resources t WHERE t.resource_type = {tt2} AND t.id = c.target_id AND t.deleted = FALSE AND {v}) IS NOT NULL"
                )
            }
        };
        return Ok(format!(
            "SELECT c.id FROM search_reference c WHERE c.resource_type = {t} AND {p} AND c.target_type = {tt} AND c.target_id IN ({inner_ids}){guard}"
        ));
    }
    let m = index_match(c, rt, st).ok_or_else(|| {
        StoreError::UnsupportedSearch("this criterion cannot start a search".into())
    })?;
    Ok(format!(
        "SELECT i.id FROM {} i WHERE i.resource_type = {t} AND {} AND ({})",
        m.table, m.rows, m.cond
    ))
}

/// One criterion as a boolean SQL expression about the resource `(type_expr, id_expr)`.
fn criterion(
    c: &Criterion,
    rt: ResourceType,
    type_expr: &str,
    id_expr: &str,
    vis: &Visibility,
    st: &mut Statement,
) -> Result<String, StoreError> {
    if is_index_match(c)
        && let Some(m) = index_match(c, rt, st)
    {
        let probe = format!(
            "SELECT 1 FROM {} i WHERE i.resource_type = {type_expr} AND i.id = {id_expr} AND {} AND ({})",
            m.table, m.rows, m.cond
        );
        return Ok(has_row(&probe, m.negate));
    }
    Ok(match c {
        Criterion::Id { values, negate } => {
            let list = values
                .iter()
                .map(|v| st.text(v))
                .collect::<Vec<_>>()
                .join(", ");
            let not = if *negate { "NOT " } else { "" };
            format!("{id_expr} {not}IN ({list})")
        }
        Criterion::Date { values, .. } => {
            // `_lastUpdated`: stored on the resource row itself, as an instant.
            let lu = if id_expr == "r.id" {
                "r.last_updated".to_owned()
            } else {
                format!(
                    "(SELECT lu.last_updated FROM resources lu WHERE lu.resource_type = {type_expr} AND lu.id = {id_expr})"
                )
            };
            let cond = or(values.iter().map(|v| date_cond(v, &lu, &lu, st)));
            format!("({cond})")
        }
        Criterion::Chain {
            param,
            target_type,
            inner,
        } => {
            let p = param_rows("c", rt, param, st);
            let tt = st.text(target_type.as_str());
            // The chained criterion is about the referenced resource, reached through `c`.
            let inner_sql =
                criterion(inner, *target_type, "c.target_type", "c.target_id", vis, st)?;
            // The referenced resource must itself be visible, or a chain would reveal facts
            // (a name, a birth date) about a record the principal may not see.
            let target_visible = match visibility::condition(
                "t",
                vis,
                visibility::Mode::Visible,
                st,
            ) {
                Some(v) => format!(
                    " AND (SELECT 1 FROM resources t WHERE t.resource_type = c.target_type AND t.id = c.target_id AND t.deleted = FALSE AND {v}) IS NOT NULL"
                ),
                None => String::new(),
            };
            has_row(
                &format!(
                    "SELECT 1 FROM search_reference c WHERE c.resource_type = {type_expr} AND c.id = {id_expr} AND {p} AND c.target_type = {tt} AND {inner_sql}{target_visible}"
                ),
                false,
            )
        }
        // Every resource has a time, on its own row (it has no index rows).
        Criterion::Missing { param, missing } if param == "_lastUpdated" => {
            if *missing { "1 = 0" } else { "1 = 1" }.to_owned()
        }
        Criterion::Missing { param, missing } => {
            let def = lookup(rt, param).ok_or_else(|| {
                StoreError::UnsupportedSearch(format!("unknown parameter '{param}'"))
            })?;
            let table = table_for(def.kind).ok_or_else(|| {
                StoreError::UnsupportedSearch(format!(":missing is not supported on '{param}'"))
            })?;
            let p = param_rows("i", rt, param, st);
            has_row(
                &format!(
                    "SELECT 1 FROM {table} i WHERE i.resource_type = {type_expr} AND i.id = {id_expr} AND {p}"
                ),
                *missing,
            )
        }
        _ => {
            return Err(StoreError::UnsupportedSearch(
                "this search criterion is not supported".into(),
            ));
        }
    })
}

/// Whether the correlated `probe` finds a row (or, `negate`d, finds none), written as a
/// scalar subquery rather than `EXISTS`: PostgreSQL turns `EXISTS` into a join it may plan
/// as a scan of every index row of the parameter (it did, with statistics lagging a bulk
/// load), while a scalar subquery stays a per-row index probe — so a search costs what its
/// driving criterion yields, whatever the statistics say. SQLite treats both alike.
fn has_row(probe: &str, negate: bool) -> String {
    let test = if negate { "IS NULL" } else { "IS NOT NULL" };
    format!("(({probe} LIMIT 1) {test})")
}

fn table_for(kind: ParamKind) -> Option<&'static str> {
    Some(match kind {
        ParamKind::Date => "search_date",
        ParamKind::String => "search_string",
        ParamKind::Token => "search_token",
        ParamKind::Number => "search_number",
        ParamKind::Quantity => "search_quantity",
        ParamKind::Reference => "search_reference",
        ParamKind::Uri => "search_uri",
        ParamKind::Composite | ParamKind::Special => return None,
    })
}

fn or(parts: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = parts.collect();
    if v.is_empty() {
        "1 = 0".to_owned()
    } else {
        v.join(" OR ")
    }
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// `col` starts with `v`, as a range so that an index on `col` serves it.
fn starts_with(col: &str, v: &str, st: &mut Statement) -> String {
    let lo = st.text(v);
    let hi = st.text(&format!("{v}{TEXT_MAX}"));
    format!("({col} >= {lo} AND {col} < {hi})")
}

fn token_cond(v: &TokenValue, st: &mut Statement) -> String {
    match (&v.system, &v.code) {
        (TokenSystem::Any, Some(code)) => format!("i.code = {}", st.text(code)),
        (TokenSystem::None, Some(code)) => {
            format!("(i.code = {} AND i.system IS NULL)", st.text(code))
        }
        (TokenSystem::Is(sys), Some(code)) => {
            let s = st.text(sys);
            let c = st.text(code);
            format!("(i.system = {s} AND i.code = {c})")
        }
        (TokenSystem::Is(sys), None) => format!("i.system = {}", st.text(sys)),
        (TokenSystem::Any | TokenSystem::None, None) => "1 = 0".to_owned(),
    }
}

/// FHIR date comparison between the resource's range `[low, high)` and the search value's.
fn date_cond(v: &DateValue, low: &str, high: &str, st: &mut Statement) -> String {
    let mut b = |x: i64| st.bind(Arg::Int(x));
    match v.prefix {
        // The resource's range lies within the search range.
        Prefix::Eq => format!("({low} >= {} AND {high} <= {})", b(v.low), b(v.high)),
        Prefix::Ne => format!("NOT ({low} >= {} AND {high} <= {})", b(v.low), b(v.high)),
        // Some part of the resource's range is above / below the search range.
        Prefix::Gt => format!("{high} > {}", b(v.high)),
        Prefix::Lt => format!("{low} < {}", b(v.low)),
        Prefix::Ge => format!("{high} > {}", b(v.low)),
        Prefix::Le => format!("{low} < {}", b(v.high)),
        // Entirely after / before.
        Prefix::Sa => format!("{low} >= {}", b(v.high)),
        Prefix::Eb => format!("{high} <= {}", b(v.low)),
        Prefix::Ap => {
            // Within 10% of the distance from now, at least a day either side.
            let now = crate::model::now_micros();
            let gap = (now - v.low).abs() / 10;
            let slack = gap.max(86_400_000_000);
            format!(
                "({low} < {} AND {high} > {})",
                b(v.high.saturating_add(slack)),
                b(v.low.saturating_sub(slack))
            )
        }
    }
}

fn number_cond(v: &NumberValue, st: &mut Statement) -> String {
    range_cond(v.prefix, v.value, v.low, v.high, st)
}

fn range_cond(prefix: Prefix, value: f64, low: f64, high: f64, st: &mut Statement) -> String {
    let mut b = |x: f64| st.bind(Arg::Real(x));
    match prefix {
        // Equal within the precision the search value was written with.
        Prefix::Eq => format!("(i.value >= {} AND i.value < {})", b(low), b(high)),
        Prefix::Ne => format!("NOT (i.value >= {} AND i.value < {})", b(low), b(high)),
        Prefix::Gt | Prefix::Sa => format!("i.value > {}", b(value)),
        Prefix::Lt | Prefix::Eb => format!("i.value < {}", b(value)),
        Prefix::Ge => format!("i.value >= {}", b(value)),
        Prefix::Le => format!("i.value <= {}", b(value)),
        Prefix::Ap => {
            let slack = (value * 0.1).abs();
            format!(
                "(i.value >= {} AND i.value <= {})",
                b(value - slack),
                b(value + slack)
            )
        }
    }
}

fn quantity_cond(v: &QuantityValue, st: &mut Statement) -> String {
    let mut cond = range_cond(v.prefix, v.value, v.low, v.high, st);
    match (&v.system, &v.code) {
        (Some(sys), Some(code)) => {
            let s = st.text(sys);
            let c = st.text(code);
            cond = format!("({cond} AND i.system = {s} AND i.code = {c})");
        }
        (None, Some(code)) => {
            let c1 = st.text(code);
            let c2 = st.text(code);
            cond = format!("({cond} AND (i.code = {c1} OR i.unit = {c2}))");
        }
        (Some(sys), None) => {
            let s = st.text(sys);
            cond = format!("({cond} AND i.system = {s})");
        }
        (None, None) => {}
    }
    cond
}

fn reference_cond(v: &ReferenceValue, st: &mut Statement) -> String {
    match v {
        ReferenceValue::Local {
            target_type: Some(t),
            id,
        } => {
            let a = st.text(t.as_str());
            let b = st.text(id);
            format!("(i.target_type = {a} AND i.target_id = {b})")
        }
        ReferenceValue::Local {
            target_type: None,
            id,
        } => format!("i.target_id = {}", st.text(id)),
        ReferenceValue::Url(u) => format!("i.url = {}", st.text(u)),
    }
}

fn identifier_cond(v: &TokenValue, st: &mut Statement) -> String {
    match (&v.system, &v.code) {
        (TokenSystem::Is(sys), Some(code)) => {
            let s = st.text(sys);
            let c = st.text(code);
            format!("(i.identifier_system = {s} AND i.identifier_value = {c})")
        }
        (TokenSystem::Is(sys), None) => format!("i.identifier_system = {}", st.text(sys)),
        (TokenSystem::None, Some(code)) => format!(
            "(i.identifier_value = {} AND i.identifier_system IS NULL)",
            st.text(code)
        ),
        (TokenSystem::Any, Some(code)) => format!("i.identifier_value = {}", st.text(code)),
        (_, None) => "1 = 0".to_owned(),
    }
}

/// Placeholders must appear as `$1, $2, …` in order, each once: backends may bind them
/// positionally (SQLite does). And no `LIMIT` is bound (see [`limit`]).
#[cfg(test)]
pub(crate) fn assert_in_order(st: &Statement) {
    assert!(
        !st.sql.contains("LIMIT $"),
        "a bound LIMIT makes SQLite prepare the statement again at every execution: {}",
        st.sql
    );
    let mut expected = 1;
    let b = st.sql.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let start = i + 1;
            let mut end = start;
            while end < b.len() && b[end].is_ascii_digit() {
                end += 1;
            }
            if end > start {
                let n: usize = st.sql[start..end].parse().unwrap();
                assert_eq!(n, expected, "out of order in: {}", st.sql);
                expected += 1;
            }
            i = end;
        } else {
            i += 1;
        }
    }
    assert_eq!(expected - 1, st.args.len(), "argument count in: {}", st.sql);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_including_missing_values_and_dots() {
        let c = Cursor {
            values: vec![Some("a.b|c".to_owned()), None, Some("12".to_owned())],
            id: "obs-1.2".to_owned(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("zz").is_err());
        assert!(Cursor::decode("vXY.i00").is_err());
    }

    fn scoped() -> Visibility {
        Visibility::Scoped(carerecord_access::Scope {
            org_id: "org-home".into(),
            org_ods: "ZC001".into(),
            principal_key: "user:u1".into(),
            types: Some(vec![ResourceType::Observation, ResourceType::Patient]),
            latest_discharge_only: true,
            now: 10,
            encounter_cutoff: 5,
            patient: Some("p1".into()),
            known: None,
        })
    }

    #[test]
    fn compiled_searches_number_their_placeholders_in_order() {
        use carerecord_search::query::{Handling, parse};
        use visibility::Mode;
        let cases = [
            "subject=Patient/p1&code=http://loinc.org|2823-3&date=ge2026-01&_sort=-date,code",
            "subject:Patient.identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018&_lastUpdated=gt2020",
            "value-quantity=gt5||mmol/L&code:text=pot&date:missing=true&_id=a,b",
            "_source:below=https://x.example&_profile=https://p.example&_tag=s|c",
        ];
        let mut known = scoped();
        if let Visibility::Scoped(s) = &mut known {
            s.known = Some(carerecord_access::KnownCare {
                patient: "p1".into(),
                in_care: true,
                alone: true,
            });
            assert_in_order(&visibility::in_care_statement("p1", s));
        }
        for vis in [Visibility::All, scoped(), known] {
            for q in cases {
                let pairs: Vec<(String, String)> = serde_urlencoded_pairs(q);
                let query = parse(
                    ResourceType::Observation,
                    &pairs,
                    Handling::Strict,
                    "http://h/fhir",
                )
                .unwrap();
                assert_in_order(&count_statement(&query, &vis, Mode::Visible).unwrap());
                assert_in_order(&counts_statement(&query, &vis, None, false).unwrap());
                for alone in [false, true] {
                    assert_in_order(&counts_statement(&query, &vis, Some("p1"), alone).unwrap());
                }
                assert_in_order(&count_statement(&query, &vis, Mode::Withheld).unwrap());
                assert_in_order(&count_statement(&query, &vis, Mode::MaybeWithheld).unwrap());
                assert_in_order(&keys_statement(&query, 2, &vis).unwrap());
                let page = page_statement(&query, 10, None, &vis).unwrap();
                assert_in_order(&page.statement);
                let cursor = Cursor {
                    values: vec![Some("1".into()); page.sort_columns],
                    id: "x".into(),
                };
                assert_in_order(
                    &page_statement(&query, 10, Some(&cursor), &vis)
                        .unwrap()
                        .statement,
                );
            }
            let ids = vec!["a".to_owned(), "b".to_owned()];
            assert_in_order(&include_statement(
                ResourceType::Observation,
                &ids,
                "subject",
                Some(ResourceType::Patient),
                &vis,
            ));
            assert_in_order(&revinclude_statement(
                ResourceType::Observation,
                "subject",
                ResourceType::Patient,
                &ids,
                5,
                &vis,
            ));
            assert_in_order(&everything_statement(
                "p",
                Some(1),
                &[ResourceType::Observation],
                5,
                Some(("Observation", "o")),
                &vis,
            ));
            let hc = HistoryCursor {
                last_updated: 1,
                resource_type: "Patient".into(),
                id: "p".into(),
                version_id: 2,
            };
            assert_in_order(&history_statement(
                Some(ResourceType::Patient),
                Some("p"),
                Some(1),
                5,
                Some(&hc),
                &vis,
            ));
            assert_in_order(&history_count_statement(
                Some(ResourceType::Patient),
                Some("p"),
                Some(1),
                &vis,
            ));
        }
    }

    fn serde_urlencoded_pairs(q: &str) -> Vec<(String, String)> {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn placeholders_are_numbered_in_order_of_appearance() {
        let mut st = Statement::default();
        let a = st.text("x");
        let b = st.bind(Arg::Int(1));
        assert_eq!((a.as_str(), b.as_str()), ("$1", "$2"));
    }
}

#[cfg(test)]
mod limits {
    use super::*;

    /// The paged reads outside search keep their `LIMIT` in the text too (see [`limit`]).
    #[test]
    fn paged_reads_bind_no_limit() {
        let f = crate::audit::AuditFilter::default();
        assert_in_order(&audit::entries_statement(3, 50));
        assert_in_order(&audit::search_statement(&f, 50, Some(9)));
        assert_in_order(&break_glass::queue_statement(
            "org",
            crate::model::ReviewStatus::Open,
            20,
            Some((1, "g")),
        ));
    }
}
