//! The statements that write versions, shared by both backends.
//!
//! Writes are batched: a transaction Bundle of forty resources becomes one multi-row `INSERT`
//! per table instead of hundreds of single-row statements, which is what makes bulk import fast
//! on both databases (and on SQLite, whose driver pays a thread hop per statement).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use carerecord_fhir::{LogicalId, ResourceType, VersionId};

use super::{Arg, Statement};
use crate::prepare::PreparedVersion;

/// The index tables, each keyed by `(resource_type, id)` of the resource the rows belong to.
/// The access tables (care relationships, objections) are rewritten with each version too.
pub const INDEX_TABLES: [&str; 9] = [
    "search_string",
    "search_token",
    "search_date",
    "search_reference",
    "search_number",
    "search_quantity",
    "search_uri",
    "care_relationships",
    "objections",
];

/// Bound values per statement, well under SQLite's (32,766) and PostgreSQL's (65,535) limits.
const MAX_ARGS: usize = 30_000;

fn opt_text(v: Option<&str>) -> Arg {
    match v {
        Some(s) => Arg::Text(s.to_owned()),
        None => Arg::Null,
    }
}

fn owned_text(v: Option<String>) -> Arg {
    v.map_or(Arg::Null, Arg::Text)
}

/// Rows for one table, flushed as multi-row `INSERT`s of at most [`MAX_ARGS`] values. The
/// rows' values are kept flat, one after another, `columns.len()` to a row.
struct TableRows {
    table: &'static str,
    columns: &'static [&'static str],
    values: Vec<Arg>,
    /// Appended after `VALUES …` (an upsert clause).
    suffix: &'static str,
    /// Whether each statement must change exactly as many rows as it carries (see
    /// [`WriteStatement::must_change`]).
    guarded: bool,
}

/// A write, and how many rows it must change. A guarded statement that changes fewer rows
/// found a version it was about to write already taken by a concurrent writer; the backend
/// reports that as `AlreadyExists`, as it reports a unique violation.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteStatement {
    pub statement: Statement,
    pub must_change: Option<u64>,
}

impl From<Statement> for WriteStatement {
    fn from(statement: Statement) -> Self {
        WriteStatement {
            statement,
            must_change: None,
        }
    }
}

impl TableRows {
    fn new(table: &'static str, columns: &'static [&'static str]) -> Self {
        TableRows {
            table,
            columns,
            values: Vec::new(),
            suffix: "",
            guarded: false,
        }
    }

    fn into_statements(self, out: &mut Vec<WriteStatement>) {
        let width = self.columns.len();
        let mut values = self.values.into_iter();
        let mut remaining = values.len() / width;
        while remaining > 0 {
            let n = chunk_len(remaining, width);
            remaining -= n;
            out.push(WriteStatement {
                statement: Statement {
                    sql: insert_sql(self.table, self.columns, n, self.suffix),
                    args: values.by_ref().take(n * width).collect(),
                },
                must_change: self.guarded.then_some(n as u64),
            });
        }
    }
}

/// The text of a multi-row `INSERT` of `rows` rows into `table`, its placeholders numbered in
/// order. A write path runs a handful of shapes (see [`chunk_len`]) thousands of times a
/// second: each is built once and copied after that, instead of formatting a placeholder per
/// value each time. A table always comes with the same columns, so table, suffix and row
/// count name a shape.
fn insert_sql(
    table: &'static str,
    columns: &'static [&'static str],
    rows: usize,
    suffix: &'static str,
) -> String {
    type Shapes = HashMap<(&'static str, &'static str, usize), String>;
    static SHAPES: OnceLock<Mutex<Shapes>> = OnceLock::new();
    let build = || {
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        let mut n = 0;
        for r in 0..rows {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..columns.len() {
                n += 1;
                // Writing to a String cannot fail.
                let _ = write!(sql, "{}${n}", if c == 0 { "" } else { ", " });
            }
            sql.push(')');
        }
        sql.push_str(suffix);
        sql
    };
    let shapes = SHAPES.get_or_init(Mutex::default);
    // A poisoned lock only means another thread panicked while holding it: the map is still
    // whole (entries are inserted complete), so keep using it.
    let mut shapes = shapes.lock().unwrap_or_else(|p| p.into_inner());
    shapes
        .entry((table, suffix, rows))
        .or_insert_with(build)
        .clone()
}

/// Rows in the next statement: [`MAX_CHUNK`] while that many remain, then the largest power of
/// two that fits. Statement texts therefore come in a handful of shapes per table, which the
/// drivers keep prepared, instead of a new text — parsed and planned afresh — for every batch.
fn chunk_len(remaining: usize, columns: usize) -> usize {
    let max = MAX_CHUNK.min((MAX_ARGS / columns.max(1)).max(1));
    if remaining >= max {
        max
    } else {
        // remaining ≥ 1 here: the largest power of two not above it.
        1 << (usize::BITS - 1 - remaining.leading_zeros())
    }
}

/// Rows per multi-row `INSERT` at the most.
const MAX_CHUNK: usize = 64;

const VERSION_COLUMNS: &[&str] = &[
    "resource_type",
    "id",
    "version_id",
    "patient_id",
    "last_updated",
    "deleted",
    "body",
    "source_ods",
    "sensitive",
];

/// The statements that write new versions: their history rows, current rows and index rows
/// (old index rows removed first for versions after the first). Each `(type, id)` must appear
/// at most once in `versions` (a multi-row upsert cannot touch one row twice). The versions are
/// taken, so that their bodies and index values move into the statements instead of being
/// copied.
pub fn versions_statements(versions: Vec<PreparedVersion>) -> Vec<WriteStatement> {
    let mut out: Vec<WriteStatement> = Vec::new();
    for v in &versions {
        if v.version_id.get() > 1 {
            out.push(
                archive_statement(v.resource_type.as_str(), v.id.as_str(), v.version_id.get())
                    .into(),
            );
            out.extend(
                clear_index_statements(v.resource_type.as_str(), v.id.as_str())
                    .into_iter()
                    .map(WriteStatement::from),
            );
        }
    }
    // First versions are plain inserts: one meeting an existing row (a concurrent create of
    // the same id) breaks the key, which the backends report as `AlreadyExists`. Only a plain
    // insert lets SQLite write many rows without a statement journal (see the SQLite store's
    // `failing_insert`); an import writes almost nothing but first versions.
    let mut created = TableRows::new("resources", VERSION_COLUMNS);
    created.guarded = true;
    let mut current = TableRows::new("resources", VERSION_COLUMNS);
    // A row is replaced only by a later version. A version a concurrent writer already wrote
    // changes nothing — and the guard turns that into `AlreadyExists`, which writers retry as
    // `Busy`.
    current.suffix = " ON CONFLICT (resource_type, id) DO UPDATE SET version_id = excluded.version_id, \
        patient_id = excluded.patient_id, last_updated = excluded.last_updated, deleted = FALSE, body = excluded.body, \
        source_ods = excluded.source_ods, sensitive = excluded.sensitive \
        WHERE resources.version_id < excluded.version_id";
    current.guarded = true;
    let mut strings = TableRows::new(
        "search_string",
        &[
            "resource_type",
            "id",
            "patient_id",
            "param",
            "normalized",
            "exact",
        ],
    );
    let mut tokens = TableRows::new(
        "search_token",
        &[
            "resource_type",
            "id",
            "patient_id",
            "param",
            "system",
            "code",
            "text",
        ],
    );
    let mut dates = TableRows::new(
        "search_date",
        &["resource_type", "id", "patient_id", "param", "low", "high"],
    );
    let mut references = TableRows::new(
        "search_reference",
        &[
            "resource_type",
            "id",
            "patient_id",
            "param",
            "target_type",
            "target_id",
            "url",
            "identifier_system",
            "identifier_value",
        ],
    );
    let mut numbers = TableRows::new(
        "search_number",
        &[
            "resource_type",
            "id",
            "patient_id",
            "param",
            "value",
            "low",
            "high",
        ],
    );
    let mut quantities = TableRows::new(
        "search_quantity",
        &[
            "resource_type",
            "id",
            "patient_id",
            "param",
            "value",
            "low",
            "high",
            "system",
            "code",
            "unit",
        ],
    );
    let mut uris = TableRows::new(
        "search_uri",
        &["resource_type", "id", "patient_id", "param", "value"],
    );
    let mut relationships = TableRows::new(
        "care_relationships",
        &[
            "resource_type",
            "id",
            "patient_id",
            "org_id",
            "kind",
            "ends",
        ],
    );
    let mut objections = TableRows::new("objections", &["resource_type", "id", "patient_id"]);

    for v in versions {
        let PreparedVersion {
            resource_type,
            id,
            version_id,
            last_updated,
            body,
            index,
            patient_id,
            class,
        } = v;
        let rt = resource_type.as_str();
        let id = id.as_str();
        let pid = patient_id.as_deref();
        let rows = if version_id.get() > 1 {
            &mut current
        } else {
            &mut created
        };
        rows.values.extend([
            Arg::Text(rt.to_owned()),
            Arg::Text(id.to_owned()),
            Arg::Int(version_id.get()),
            opt_text(pid),
            Arg::Int(last_updated),
            Arg::Bool(false),
            Arg::Text(body),
            owned_text(class.source_ods),
            Arg::Bool(class.sensitive),
        ]);
        // The first columns of every index row: whose row it is, and for which parameter.
        let owner = |values: &mut Vec<Arg>, param: String| {
            values.extend([
                Arg::Text(rt.to_owned()),
                Arg::Text(id.to_owned()),
                opt_text(pid),
                Arg::Text(param),
            ]);
        };
        for e in index.strings {
            owner(&mut strings.values, e.param);
            strings
                .values
                .extend([Arg::Text(e.normalized), Arg::Text(e.exact)]);
        }
        for e in index.tokens {
            owner(&mut tokens.values, e.param);
            tokens
                .values
                .extend([owned_text(e.system), owned_text(e.code), owned_text(e.text)]);
        }
        for e in index.dates {
            owner(&mut dates.values, e.param);
            dates.values.extend([Arg::Int(e.low), Arg::Int(e.high)]);
        }
        for e in index.references {
            owner(&mut references.values, e.param);
            references.values.extend([
                opt_text(e.target_type.map(|t| t.as_str())),
                owned_text(e.target_id),
                owned_text(e.url),
                owned_text(e.identifier_system),
                owned_text(e.identifier_value),
            ]);
        }
        for e in index.numbers {
            owner(&mut numbers.values, e.param);
            numbers
                .values
                .extend([Arg::Real(e.value), Arg::Real(e.low), Arg::Real(e.high)]);
        }
        for e in index.quantities {
            owner(&mut quantities.values, e.param);
            quantities.values.extend([
                Arg::Real(e.value),
                Arg::Real(e.low),
                Arg::Real(e.high),
                owned_text(e.system),
                owned_text(e.code),
                owned_text(e.unit),
            ]);
        }
        for e in index.uris {
            owner(&mut uris.values, e.param);
            uris.values.push(Arg::Text(e.value));
        }
        if let Some(p) = pid {
            for rel in class.relationships {
                relationships.values.extend([
                    Arg::Text(rt.to_owned()),
                    Arg::Text(id.to_owned()),
                    Arg::Text(p.to_owned()),
                    Arg::Text(rel.org_id),
                    Arg::Text(rel.kind.as_str().to_owned()),
                    // Open relationships end at the largest instant, so the visibility test is
                    // one comparison (and no NULL, which PostgreSQL would type as text here).
                    Arg::Int(rel.ends.unwrap_or(i64::MAX)),
                ]);
            }
            // An unverified NHS number holds the person back exactly as an objection does.
            if class.objection || class.unverified_identity {
                objections.values.extend([
                    Arg::Text(rt.to_owned()),
                    Arg::Text(id.to_owned()),
                    Arg::Text(p.to_owned()),
                ]);
            }
        }
    }
    for t in [
        created,
        current,
        strings,
        tokens,
        dates,
        references,
        numbers,
        quantities,
        uris,
        relationships,
        objections,
    ] {
        t.into_statements(&mut out);
    }
    out
}

/// Copies the current row of one resource (a live version or a deletion marker) into
/// `resource_history`, before a new version replaces it. `resource_history` holds only
/// superseded versions: the current one lives once, in `resources`, so a create writes its body
/// once (readers of every version take the union, see `sql::reads::ALL_VERSIONS`). A row
/// already at version `before` or later is left alone, so nothing is archived twice.
fn archive_statement(rt: &str, id: &str, before: i64) -> Statement {
    Statement {
        sql: format!(
            "INSERT INTO resource_history ({cols}) SELECT {cols} FROM resources \
             WHERE resource_type = $1 AND id = $2 AND version_id < $3",
            cols = VERSION_COLUMNS.join(", ")
        ),
        args: vec![
            Arg::Text(rt.to_owned()),
            Arg::Text(id.to_owned()),
            Arg::Int(before),
        ],
    }
}

/// Removes every index row of one resource.
pub fn clear_index_statements(rt: &str, id: &str) -> Vec<Statement> {
    INDEX_TABLES
        .iter()
        .map(|table| Statement {
            sql: format!("DELETE FROM {table} WHERE resource_type = $1 AND id = $2"),
            args: vec![Arg::Text(rt.to_owned()), Arg::Text(id.to_owned())],
        })
        .collect()
}

pub fn deletion_statements(
    rt: ResourceType,
    id: &LogicalId,
    version: VersionId,
    last_updated: i64,
) -> Vec<Statement> {
    // Placeholders in order of appearance, each used once (the contract of this module).
    let mut out = vec![
        archive_statement(rt.as_str(), id.as_str(), version.get()),
        Statement {
            sql: "UPDATE resources SET version_id = $1, last_updated = $2, deleted = TRUE, body = '' WHERE resource_type = $3 AND id = $4".to_owned(),
            args: vec![
                Arg::Int(version.get()),
                Arg::Int(last_updated),
                Arg::Text(rt.as_str().to_owned()),
                Arg::Text(id.as_str().to_owned()),
            ],
        },
    ];
    out.extend(clear_index_statements(rt.as_str(), id.as_str()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prepare::prepare_version;
    use serde_json::json;

    fn version(i: usize) -> PreparedVersion {
        let id = LogicalId::parse(&format!("obs-{i}")).unwrap();
        let body = json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
            "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-11-01",
            "valueQuantity": {"value": 4.5, "unit": "mmol/L"}});
        prepare_version(ResourceType::Observation, &id, VersionId::FIRST, 0, body)
    }

    #[test]
    fn every_write_statement_numbers_its_placeholders_in_order() {
        let vs: Vec<PreparedVersion> = (0..3).map(version).collect();
        for w in versions_statements(vs) {
            super::super::assert_in_order(&w.statement);
        }
        let id = LogicalId::parse("obs-1").unwrap();
        for st in deletion_statements(ResourceType::Observation, &id, VersionId::FIRST.next(), 5) {
            super::super::assert_in_order(&st);
        }
    }

    fn statements(vs: Vec<PreparedVersion>) -> Vec<Statement> {
        versions_statements(vs)
            .into_iter()
            .map(|w| w.statement)
            .collect()
    }

    #[test]
    fn current_rows_must_all_be_written_and_old_ones_are_archived_first() {
        let vs: Vec<PreparedVersion> = (0..10)
            .map(|i| {
                let mut v = version(i);
                v.version_id = VersionId::FIRST.next();
                v
            })
            .collect();
        let ws = versions_statements(vs);
        let guarded: Vec<(usize, Option<u64>)> = ws
            .iter()
            .filter(|w| w.statement.sql.starts_with("INSERT INTO resources "))
            .map(|w| {
                (
                    w.statement.args.len() / VERSION_COLUMNS.len(),
                    w.must_change,
                )
            })
            .collect();
        assert_eq!(guarded, vec![(8, Some(8)), (2, Some(2))]);
        let first_current = ws
            .iter()
            .position(|w| w.statement.sql.starts_with("INSERT INTO resources "))
            .unwrap();
        let archives: Vec<usize> = ws
            .iter()
            .enumerate()
            .filter(|(_, w)| w.statement.sql.starts_with("INSERT INTO resource_history"))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            archives.len(),
            10,
            "each superseded version is archived once"
        );
        assert!(archives.iter().all(|&i| i < first_current));
        assert!(
            ws.iter()
                .filter(|w| !w.statement.sql.starts_with("INSERT INTO resources "))
                .all(|w| w.must_change.is_none())
        );
    }

    #[test]
    fn first_versions_are_plain_inserts_and_later_ones_upserts() {
        let vs: Vec<PreparedVersion> = (0..5)
            .map(|i| {
                let mut v = version(i);
                if i % 2 == 1 {
                    v.version_id = VersionId::FIRST.next();
                }
                v
            })
            .collect();
        let current: Vec<(usize, bool, Option<u64>)> = versions_statements(vs)
            .into_iter()
            .filter(|w| w.statement.sql.starts_with("INSERT INTO resources "))
            .map(|w| {
                (
                    w.statement.args.len() / VERSION_COLUMNS.len(),
                    w.statement.sql.contains(" ON CONFLICT "),
                    w.must_change,
                )
            })
            .collect();
        assert_eq!(
            current,
            vec![(2, false, Some(2)), (1, false, Some(1)), (2, true, Some(2))],
            "three first versions (2 + 1 rows), then two later ones"
        );
    }

    #[test]
    fn batches_split_into_a_few_statement_shapes() {
        assert_eq!(chunk_len(200, 7), 64);
        assert_eq!(chunk_len(10, 7), 8);
        assert_eq!(chunk_len(1, 7), 1);
        let vs: Vec<PreparedVersion> = (0..10).map(version).collect();
        let sts = statements(vs);
        let current: Vec<usize> = sts
            .iter()
            .filter(|s| s.sql.starts_with("INSERT INTO resources "))
            .map(|s| s.args.len() / VERSION_COLUMNS.len())
            .collect();
        assert_eq!(current, vec![8, 2], "10 rows as 8 + 2");
        assert!(
            sts.iter()
                .all(|s| !s.sql.starts_with("INSERT INTO resource_history")),
            "a first version is written once, as the current row"
        );
        assert!(
            sts.iter().all(|s| !s.sql.starts_with("DELETE")),
            "first versions clear nothing"
        );
    }

    #[test]
    fn large_batches_are_split_below_the_bound_value_limit() {
        let vs: Vec<PreparedVersion> = (0..5_000).map(version).collect();
        let sts = statements(vs);
        assert!(sts.iter().all(|s| s.args.len() <= MAX_ARGS));
        let rows: usize = sts
            .iter()
            .filter(|s| s.sql.starts_with("INSERT INTO resources "))
            .map(|s| s.args.len() / VERSION_COLUMNS.len())
            .sum();
        assert_eq!(rows, 5_000);
        assert!(
            sts.iter()
                .filter(|s| s.sql.starts_with("INSERT INTO resources "))
                .count()
                > 1
        );
    }
}
