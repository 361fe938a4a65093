//! The read side of storage written once over a backend's SQL primitives.
//!
//! A backend implements [`SqlExec`] (run a statement, decode rows) for its pool and for its
//! transactions; everything that is FHIR logic — paging, includes, totals, history, the
//! patient compartment — lives here, so both backends behave the same by construction.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use carerecord_access::{KnownCare, Visibility};
use carerecord_fhir::{LogicalId, ResourceType, VersionId};
use carerecord_search::query::{Criterion, Include, ReferenceValue, SearchQuery, Total};

use crate::cells::{Cols, Kind};
use crate::error::StoreError;
use crate::model::{HistoryQuery, Page, ResourceKey, SearchOutcome, StoredResource, VersionHead};
use crate::sql::visibility::{self, Mode};
use crate::sql::{self, Arg, Cursor, HistoryCursor, Statement};

/// How many resources one search may pull in through `_include`/`_revinclude`.
pub const MAX_INCLUDED: u32 = 1_000;
/// How many rounds of `:iterate` are followed.
const MAX_ITERATE_DEPTH: usize = 4;

/// A resource row plus the text of any extra columns the statement selected.
#[derive(Debug, Clone)]
pub struct Row {
    pub resource: StoredResource,
    pub extra: Vec<Option<String>>,
}

/// What a backend must provide: run a statement and decode its rows.
#[async_trait]
pub trait SqlExec: Send {
    /// Rows of `resource_type, id, version_id, last_updated, deleted, body, patient_id` followed by
    /// `extra_columns` nullable sort-value columns, each text or a real number; a backend
    /// returns a real as its shortest round-trip text (Rust's `f64` `Display`).
    async fn resources(
        &mut self,
        st: &Statement,
        extra_columns: usize,
    ) -> Result<Vec<Row>, StoreError>;

    /// Rows of `resource_type, id`.
    async fn keys(&mut self, st: &Statement) -> Result<Vec<ResourceKey>, StoreError>;

    /// A single integer.
    async fn scalar(&mut self, st: &Statement) -> Result<i64, StoreError>;

    /// Rows of nullable columns decoded as `kinds` says (the gathering tables, `crate::ingest`).
    async fn cells(
        &mut self,
        st: &Statement,
        kinds: &[crate::cells::Kind],
    ) -> Result<Vec<Vec<crate::cells::Cell>>, StoreError>;

    /// Runs a statement that returns no rows; answers how many rows it changed.
    async fn execute(&mut self, st: &Statement) -> Result<u64, StoreError>;

    /// [`SqlExec::execute`] for a statement the caller is done with: a backend may bind its
    /// arguments without copying them (the write path's large multi-row inserts).
    async fn execute_owned(&mut self, st: Statement) -> Result<u64, StoreError> {
        self.execute(&st).await
    }

    /// [`SqlExec::execute_owned`] for one of the statements that write versions
    /// ([`crate::sql::versions_statements`], run by [`crate::pending::Pending::flush`]). A
    /// flush that fails has lost what it had not yet run, so its transaction is rolled back
    /// (entirely, or to a savepoint) and never goes on: a backend need not undo a failed
    /// statement's own partial effects, and may run the statement in a way that saves it the
    /// work of being able to.
    async fn execute_write(&mut self, st: Statement) -> Result<u64, StoreError> {
        self.execute_owned(st).await
    }
}

/// Builds a [`StoredResource`] from raw column values, checking what the database returned.
pub fn decode_resource(
    resource_type: &str,
    id: String,
    version_id: i64,
    last_updated: i64,
    deleted: bool,
    body: String,
    patient_id: Option<String>,
) -> Result<StoredResource, StoreError> {
    Ok(StoredResource {
        resource_type: resource_type.parse().map_err(|_| {
            StoreError::Backend(format!("unknown resource type in store: {resource_type}"))
        })?,
        id: LogicalId::parse(&id).map_err(|e| StoreError::Backend(e.to_string()))?,
        version_id: VersionId::new(version_id).map_err(|e| StoreError::Backend(e.to_string()))?,
        last_updated,
        deleted,
        body,
        patient_id,
    })
}

pub fn decode_key(resource_type: &str, id: &str) -> Result<ResourceKey, StoreError> {
    Ok(ResourceKey {
        resource_type: resource_type.parse().map_err(|_| {
            StoreError::Backend(format!("unknown resource type in store: {resource_type}"))
        })?,
        id: LogicalId::parse(id).map_err(|e| StoreError::Backend(e.to_string()))?,
    })
}

fn key_statement(
    table: &str,
    rt: ResourceType,
    id: &LogicalId,
    version: Option<VersionId>,
    vis: &Visibility,
) -> Statement {
    let mut st = Statement {
        sql: String::new(),
        args: vec![
            Arg::Text(rt.as_str().to_owned()),
            Arg::Text(id.as_str().to_owned()),
        ],
    };
    let mut sql = format!(
        "SELECT r.resource_type, r.id, r.version_id, r.last_updated, r.deleted, r.body, r.patient_id FROM {table} r WHERE r.resource_type = $1 AND r.id = $2"
    );
    if let Some(v) = version {
        st.args.push(Arg::Int(v.get()));
        sql.push_str(" AND r.version_id = $3");
    }
    visibility::and(&mut sql, "r", vis, &mut st);
    st.sql = sql;
    st
}

/// The statement reading the current row of one resource (a backend may add a row lock).
pub fn current_statement(rt: ResourceType, id: &LogicalId) -> Statement {
    key_statement("resources", rt, id, None, &Visibility::All)
}

/// Keys looked up by one [`heads_statements`] statement at the most.
const HEADS_CHUNK: usize = 128;

/// The statements reading the current heads of `keys`: rows shaped like resource rows with an
/// empty body, deletion markers included, absent keys left out. Each statement joins a `VALUES`
/// list of keys to `resources` (so both databases seek the primary key for each); the list is
/// padded to a power of two by repeating its last key, so the texts come in a few shapes the
/// drivers keep prepared. `suffix` is appended to each (a backend's row lock).
pub fn heads_statements(keys: &[ResourceKey], suffix: &str) -> Vec<Statement> {
    keys.chunks(HEADS_CHUNK)
        .map(|chunk| {
            let n = chunk.len().next_power_of_two();
            let mut st = Statement::default();
            let mut tuples = Vec::with_capacity(n);
            for i in 0..n {
                let k = chunk.get(i).or(chunk.last());
                let (t, id) = k.map_or(("", ""), |k| (k.resource_type.as_str(), k.id.as_str()));
                let a = st.bind(Arg::Text(t.to_owned()));
                let b = st.bind(Arg::Text(id.to_owned()));
                tuples.push(format!("({a}, {b})"));
            }
            st.sql = format!(
                "SELECT r.resource_type, r.id, r.version_id, r.last_updated, r.deleted, '', r.patient_id \
                 FROM (VALUES {}) k JOIN resources r ON r.resource_type = k.column1 AND r.id = k.column2{suffix}",
                tuples.join(", ")
            );
            st
        })
        .collect()
}

/// The current heads of `keys` (see [`heads_statements`]).
pub async fn heads(
    exec: &mut dyn SqlExec,
    keys: &[ResourceKey],
    suffix: &str,
) -> Result<HashMap<ResourceKey, VersionHead>, StoreError> {
    let mut out = HashMap::with_capacity(keys.len());
    for st in heads_statements(keys, suffix) {
        for row in exec.resources(&st, 0).await? {
            let r = row.resource;
            let head = VersionHead::of(&r);
            out.insert(
                ResourceKey {
                    resource_type: r.resource_type,
                    id: r.id,
                },
                head,
            );
        }
    }
    Ok(out)
}

/// The current row, deletion markers included (those of resources `vis` could see).
pub async fn current(
    exec: &mut dyn SqlExec,
    rt: ResourceType,
    id: &LogicalId,
    vis: &Visibility,
) -> Result<Option<StoredResource>, StoreError> {
    let rows = exec
        .resources(&key_statement("resources", rt, id, None, vis), 0)
        .await?;
    Ok(rows.into_iter().next().map(|r| r.resource))
}

/// Reads the current version. A resource `vis` may not see reads as `NotFound`, exactly as
/// one that does not exist: the caller decides what to tell the principal.
pub async fn read(
    exec: &mut dyn SqlExec,
    rt: ResourceType,
    id: &LogicalId,
    vis: &Visibility,
) -> Result<StoredResource, StoreError> {
    match current(exec, rt, id, vis).await? {
        None => Err(StoreError::NotFound),
        Some(r) if r.deleted => Err(StoreError::Gone(r.version_id)),
        Some(r) => Ok(r),
    }
}

pub async fn vread(
    exec: &mut dyn SqlExec,
    rt: ResourceType,
    id: &LogicalId,
    version: VersionId,
    vis: &Visibility,
) -> Result<StoredResource, StoreError> {
    let rows = exec
        .resources(
            &key_statement(crate::sql::ALL_VERSIONS, rt, id, Some(version), vis),
            0,
        )
        .await?;
    match rows.into_iter().next().map(|r| r.resource) {
        None => Err(StoreError::NotFound),
        Some(r) if r.deleted => Err(StoreError::Gone(r.version_id)),
        Some(r) => Ok(r),
    }
}

pub async fn read_many(
    exec: &mut dyn SqlExec,
    keys: &[ResourceKey],
    vis: &Visibility,
) -> Result<Vec<StoredResource>, StoreError> {
    let mut out = Vec::with_capacity(keys.len());
    // Group by type so each statement is one indexed IN list.
    let mut types: Vec<ResourceType> = keys.iter().map(|k| k.resource_type).collect();
    types.sort();
    types.dedup();
    for t in types {
        let ids: Vec<&str> = keys
            .iter()
            .filter(|k| k.resource_type == t)
            .map(|k| k.id.as_str())
            .collect();
        for chunk in ids.chunks(500) {
            let mut st = Statement::default();
            st.args.push(Arg::Text(t.as_str().to_owned()));
            let list: Vec<String> = chunk
                .iter()
                .map(|id| {
                    st.args.push(Arg::Text((*id).to_owned()));
                    format!("${}", st.args.len())
                })
                .collect();
            let mut text = format!(
                "SELECT {} FROM resources r WHERE r.resource_type = $1 AND r.deleted = FALSE AND r.id IN ({})",
                sql::RESOURCE_COLUMNS,
                list.join(", ")
            );
            visibility::and(&mut text, "r", vis, &mut st);
            st.sql = text;
            out.extend(
                exec.resources(&st, 0)
                    .await?
                    .into_iter()
                    .map(|r| r.resource),
            );
        }
    }
    Ok(out)
}

pub async fn search(
    exec: &mut dyn SqlExec,
    q: &SearchQuery,
    page_size: u32,
    vis: &Visibility,
) -> Result<SearchOutcome, StoreError> {
    let wants_total = q.total != Total::None;
    // "N withheld" is said once, on the first page: later pages would repeat the same number.
    // Nothing is withheld from an unrestricted principal.
    let wants_withheld = q.cursor.is_none() && !matches!(vis, Visibility::All);
    let about = pinned_patient(q);
    // Whether the person searched is in care: asked by the first page's counts, or on its own.
    let mut told = if wants_withheld {
        None
    } else {
        pin(exec, vis, about).await?
    };
    // Counting is one indexed query; estimate and accurate are both answered exactly.
    let (total, withheld) = if wants_withheld {
        // First as if every match were the person's (no probes for anyone else's rows); if
        // some are someone else's, again with the probes.
        let mut counts = first_counts(exec, q, vis, about, true).await?;
        if counts.others > 0 {
            counts = first_counts(exec, q, vis, about, false).await?;
        }
        let FirstCounts {
            shown,
            maybe_withheld,
            others,
            answer,
        } = counts;
        if let (Some(patient), Some(answer)) = (about, answer.filter(|a| *a >= 0)) {
            told = tell(vis, patient, answer > 0, others == 0);
        }
        // The exact number only when some match may be withheld (see `counts_statement`).
        let withheld = if maybe_withheld == 0 {
            0
        } else {
            let vis = told.as_ref().unwrap_or(vis);
            count(
                exec.scalar(&sql::count_statement(q, vis, Mode::Withheld)?)
                    .await?,
            )
        };
        (wants_total.then_some(shown), withheld)
    } else if wants_total {
        let vis = told.as_ref().unwrap_or(vis);
        let n = exec
            .scalar(&sql::count_statement(q, vis, Mode::Visible)?)
            .await?;
        (Some(count(n)), 0)
    } else {
        (None, 0)
    };
    let vis = told.as_ref().unwrap_or(vis);
    if page_size == 0 {
        return Ok(SearchOutcome {
            total,
            withheld,
            ..SearchOutcome::default()
        });
    }
    let cursor = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let page = sql::page_statement(q, page_size, cursor.as_ref(), vis)?;
    let mut rows = exec.resources(&page.statement, page.sort_columns).await?;
    let mut next_cursor = None;
    if rows.len() > page_size as usize {
        rows.truncate(page_size as usize);
        if let Some(last) = rows.last() {
            next_cursor = Some(
                Cursor {
                    values: last.extra.clone(),
                    id: last.resource.id.as_str().to_owned(),
                }
                .encode(),
            );
        }
    }
    let matches: Vec<StoredResource> = rows.into_iter().map(|r| r.resource).collect();
    let included = includes(exec, q, &matches, vis).await?;
    Ok(SearchOutcome {
        matches,
        included,
        next_cursor,
        total,
        withheld,
    })
}

/// For a request about one person by a scoped principal: the principal's visibility with
/// the answer to "is this person in the organisation's care?" asked once
/// ([`carerecord_access::Scope::known`]), instead of by every row the request's statements
/// read. `None` when there is nothing to ask (an unrestricted principal, or no one person).
pub async fn pin(
    exec: &mut dyn SqlExec,
    vis: &Visibility,
    patient: Option<&str>,
) -> Result<Option<Visibility>, StoreError> {
    let (Visibility::Scoped(s), Some(patient)) = (vis, patient) else {
        return Ok(None);
    };
    if s.known.is_some() {
        return Ok(None);
    }
    let in_care = exec
        .scalar(&visibility::in_care_statement(patient, s))
        .await?
        > 0;
    Ok(tell(vis, patient, in_care, false))
}

/// `vis` told whether `patient` is in care, and whether the request's matches are theirs
/// alone (`None` for an unrestricted principal).
fn tell(vis: &Visibility, patient: &str, in_care: bool, alone: bool) -> Option<Visibility> {
    let Visibility::Scoped(s) = vis else {
        return None;
    };
    let mut s = s.clone();
    s.known = Some(KnownCare {
        patient: patient.to_owned(),
        in_care,
        alone,
    });
    Some(Visibility::Scoped(s))
}

/// The row of [`sql::counts_statement`].
struct FirstCounts {
    shown: u64,
    maybe_withheld: u64,
    others: u64,
    answer: Option<i64>,
}

async fn first_counts(
    exec: &mut dyn SqlExec,
    q: &SearchQuery,
    vis: &Visibility,
    about: Option<&str>,
    alone: bool,
) -> Result<FirstCounts, StoreError> {
    let rows = exec
        .cells(
            &sql::counts_statement(q, vis, about, alone)?,
            &[Kind::Int, Kind::Int, Kind::Int, Kind::Int],
        )
        .await?;
    let mut cols = Cols(rows.into_iter().next().unwrap_or_default().into_iter());
    Ok(FirstCounts {
        shown: count(cols.int()?),
        maybe_withheld: count(cols.int()?),
        others: count(cols.int()?),
        answer: cols.opt_int()?,
    })
}

/// The one person a search's criteria name through a reference to a Patient
/// (`subject=Patient/X`, `patient=X`), if any. Only which person's answer is asked ahead
/// depends on it: the compiled condition is right for every row whatever it returns.
fn pinned_patient(q: &SearchQuery) -> Option<&str> {
    q.criteria.iter().find_map(|c| match c {
        Criterion::Reference { values, .. } => match values.as_slice() {
            [
                ReferenceValue::Local {
                    target_type: Some(ResourceType::Patient),
                    id,
                },
            ] => Some(id.as_str()),
            _ => None,
        },
        _ => None,
    })
}

/// A `COUNT`'s value as a count (a database never answers one below zero).
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

async fn includes(
    exec: &mut dyn SqlExec,
    q: &SearchQuery,
    matches: &[StoredResource],
    vis: &Visibility,
) -> Result<Vec<StoredResource>, StoreError> {
    if q.include.is_empty() && q.revinclude.is_empty() {
        return Ok(Vec::new());
    }
    let mut seen: HashSet<(ResourceType, String)> = matches
        .iter()
        .map(|r| (r.resource_type, r.id.as_str().to_owned()))
        .collect();
    let mut included: Vec<StoredResource> = Vec::new();
    let mut frontier: Vec<StoredResource> = matches.to_vec();
    for depth in 0..MAX_ITERATE_DEPTH {
        let mut found = Vec::new();
        for inc in &q.include {
            if depth > 0 && !inc.iterate {
                continue;
            }
            let ids = ids_of(&frontier, inc.source_type);
            if ids.is_empty() {
                continue;
            }
            for chunk in ids.chunks(500) {
                let st = sql::include_statement(
                    inc.source_type,
                    chunk,
                    &inc.param,
                    inc.target_type,
                    vis,
                );
                found.extend(
                    exec.resources(&st, 0)
                        .await?
                        .into_iter()
                        .map(|r| r.resource),
                );
            }
        }
        for rev in &q.revinclude {
            if depth > 0 && !rev.iterate {
                continue;
            }
            for target in target_types(&frontier, rev) {
                let ids = ids_of(&frontier, target);
                for chunk in ids.chunks(500) {
                    let st = sql::revinclude_statement(
                        rev.source_type,
                        &rev.param,
                        target,
                        chunk,
                        MAX_INCLUDED,
                        vis,
                    );
                    found.extend(
                        exec.resources(&st, 0)
                            .await?
                            .into_iter()
                            .map(|r| r.resource),
                    );
                }
            }
        }
        let mut next = Vec::new();
        for r in found {
            if seen.insert((r.resource_type, r.id.as_str().to_owned())) {
                next.push(r.clone());
                included.push(r);
            }
        }
        if next.is_empty() || included.len() >= MAX_INCLUDED as usize {
            break;
        }
        frontier = next;
    }
    included.truncate(MAX_INCLUDED as usize);
    Ok(included)
}

fn ids_of(rs: &[StoredResource], t: ResourceType) -> Vec<String> {
    rs.iter()
        .filter(|r| r.resource_type == t)
        .map(|r| r.id.as_str().to_owned())
        .collect()
}

fn target_types(rs: &[StoredResource], _rev: &Include) -> Vec<ResourceType> {
    let mut ts: Vec<ResourceType> = rs.iter().map(|r| r.resource_type).collect();
    ts.sort();
    ts.dedup();
    ts
}

pub async fn history(
    exec: &mut dyn SqlExec,
    rt: Option<ResourceType>,
    id: Option<&LogicalId>,
    q: &HistoryQuery,
    vis: &Visibility,
) -> Result<Page<StoredResource>, StoreError> {
    let after = q.cursor.as_deref().map(HistoryCursor::decode).transpose()?;
    let total = if after.is_none() {
        let st = sql::history_count_statement(rt, id.map(LogicalId::as_str), q.since, vis);
        Some(u64::try_from(exec.scalar(&st).await?).unwrap_or(0))
    } else {
        None
    };
    let st = sql::history_statement(
        rt,
        id.map(LogicalId::as_str),
        q.since,
        q.count,
        after.as_ref(),
        vis,
    );
    let mut rows: Vec<StoredResource> = exec
        .resources(&st, 0)
        .await?
        .into_iter()
        .map(|r| r.resource)
        .collect();
    let mut next_cursor = None;
    if rows.len() > q.count as usize {
        rows.truncate(q.count as usize);
        if let Some(last) = rows.last() {
            next_cursor = Some(
                HistoryCursor {
                    last_updated: last.last_updated,
                    resource_type: last.resource_type.as_str().to_owned(),
                    id: last.id.as_str().to_owned(),
                    version_id: last.version_id.get(),
                }
                .encode(),
            );
        }
    }
    Ok(Page {
        items: rows,
        next_cursor,
        total,
        withheld: 0,
    })
}

pub async fn everything(
    exec: &mut dyn SqlExec,
    patient_id: &LogicalId,
    since: Option<i64>,
    types: &[ResourceType],
    count: u32,
    cursor: Option<&str>,
    vis: &Visibility,
) -> Result<Page<StoredResource>, StoreError> {
    let after = match cursor {
        Some(c) => {
            let c = Cursor::decode(c)?;
            match c.values.as_slice() {
                [Some(t)] => Some((t.clone(), c.id)),
                _ => return Err(StoreError::InvalidCursor),
            }
        }
        None => None,
    };
    let pinned = pin(exec, vis, Some(patient_id.as_str())).await?;
    let vis = pinned.as_ref().unwrap_or(vis);
    let st = sql::everything_statement(
        patient_id.as_str(),
        since,
        types,
        count,
        after.as_ref().map(|(t, id)| (t.as_str(), id.as_str())),
        vis,
    );
    let mut rows: Vec<StoredResource> = exec
        .resources(&st, 0)
        .await?
        .into_iter()
        .map(|r| r.resource)
        .collect();
    let mut next_cursor = None;
    if rows.len() > count as usize {
        rows.truncate(count as usize);
        if let Some(last) = rows.last() {
            next_cursor = Some(
                Cursor {
                    values: vec![Some(last.resource_type.as_str().to_owned())],
                    id: last.id.as_str().to_owned(),
                }
                .encode(),
            );
        }
    }
    let withheld = if after.is_none() {
        everything_withheld(exec, patient_id, since, types, vis).await?
    } else {
        0
    };
    Ok(Page {
        items: rows,
        next_cursor,
        total: None,
        withheld,
    })
}

/// How many of a patient's resources are withheld from a scoped principal as sensitive.
async fn everything_withheld(
    exec: &mut dyn SqlExec,
    patient_id: &LogicalId,
    since: Option<i64>,
    types: &[ResourceType],
    vis: &Visibility,
) -> Result<u64, StoreError> {
    if matches!(vis, Visibility::All) {
        return Ok(0);
    }
    let mut st = Statement::default();
    let p = st.bind(Arg::Text(patient_id.as_str().to_owned()));
    let mut text =
        format!("SELECT COUNT(*) FROM resources r WHERE r.patient_id = {p} AND r.deleted = FALSE");
    if let Some(s) = since {
        let s = st.bind(Arg::Int(s));
        text.push_str(&format!(" AND r.last_updated >= {s}"));
    }
    if !types.is_empty() {
        let list: Vec<String> = types
            .iter()
            .map(|t| st.bind(Arg::Text(t.as_str().to_owned())))
            .collect();
        text.push_str(&format!(" AND r.resource_type IN ({})", list.join(", ")));
    }
    if let Some(c) = visibility::condition("r", vis, Mode::Withheld, &mut st) {
        text.push_str(" AND ");
        text.push_str(&c);
    }
    st.sql = text;
    Ok(u64::try_from(exec.scalar(&st).await?).unwrap_or(0))
}
