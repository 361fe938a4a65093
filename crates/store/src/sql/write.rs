//! The statements that write versions, shared by both backends.
//!
//! Writes are batched: a transaction Bundle of forty resources becomes one multi-row `INSERT`
//! per table instead of hundreds of single-row statements, which is what makes bulk import fast
//! on both databases (and on SQLite, whose driver pays a thread hop per statement).

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

/// Rows for one table, flushed as multi-row `INSERT`s of at most [`MAX_ARGS`] values.
struct TableRows {
    table: &'static str,
    columns: &'static [&'static str],
    rows: Vec<Vec<Arg>>,
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
            rows: Vec::new(),
            suffix: "",
            guarded: false,
        }
    }

    fn into_statements(self, out: &mut Vec<WriteStatement>) {
        let mut rows = self.rows.into_iter();
        let mut remaining = rows.len();
        while remaining > 0 {
            let n = chunk_len(remaining, self.columns.len());
            remaining -= n;
            let mut st = Statement::default();
            let mut tuples = Vec::with_capacity(n);
            for row in rows.by_ref().take(n) {
                let ps: Vec<String> = row.into_iter().map(|a| st.bind(a)).collect();
                tuples.push(format!("({})", ps.join(", ")));
            }
            st.sql = format!(
                "INSERT INTO {} ({}) VALUES {}{}",
                self.table,
                self.columns.join(", "),
                tuples.join(", "),
                self.suffix
            );
            out.push(WriteStatement {
                statement: st,
                must_change: self.guarded.then_some(n as u64),
            });
        }
    }
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
/// at most once in `versions` (a multi-row upsert cannot touch one row twice).
pub fn versions_statements(versions: &[&PreparedVersion]) -> Vec<WriteStatement> {
    let mut out: Vec<WriteStatement> = Vec::new();
    for v in versions {
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
    let mut current = TableRows::new("resources", VERSION_COLUMNS);
    // A row is replaced only by a later version. A version 1 meeting an existing row, or a
    // version a concurrent writer already wrote, changes nothing — and the guard turns that
    // into `AlreadyExists`, which writers retry as `Busy`.
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
        let rt = Arg::Text(v.resource_type.as_str().to_owned());
        let id = Arg::Text(v.id.as_str().to_owned());
        let pid = opt_text(v.patient_id.as_deref());
        let version_row = vec![
            rt.clone(),
            id.clone(),
            Arg::Int(v.version_id.get()),
            pid.clone(),
            Arg::Int(v.last_updated),
            Arg::Bool(false),
            Arg::Text(v.body.clone()),
            opt_text(v.class.source_ods.as_deref()),
            Arg::Bool(v.class.sensitive),
        ];
        current.rows.push(version_row);
        let owner = |param: &str| {
            vec![
                rt.clone(),
                id.clone(),
                pid.clone(),
                Arg::Text(param.to_owned()),
            ]
        };
        let ix = &v.index;
        for e in &ix.strings {
            let mut r = owner(&e.param);
            r.extend([Arg::Text(e.normalized.clone()), Arg::Text(e.exact.clone())]);
            strings.rows.push(r);
        }
        for e in &ix.tokens {
            let mut r = owner(&e.param);
            r.extend([
                opt_text(e.system.as_deref()),
                opt_text(e.code.as_deref()),
                opt_text(e.text.as_deref()),
            ]);
            tokens.rows.push(r);
        }
        for e in &ix.dates {
            let mut r = owner(&e.param);
            r.extend([Arg::Int(e.low), Arg::Int(e.high)]);
            dates.rows.push(r);
        }
        for e in &ix.references {
            let mut r = owner(&e.param);
            r.extend([
                opt_text(e.target_type.map(|t| t.as_str())),
                opt_text(e.target_id.as_deref()),
                opt_text(e.url.as_deref()),
                opt_text(e.identifier_system.as_deref()),
                opt_text(e.identifier_value.as_deref()),
            ]);
            references.rows.push(r);
        }
        for e in &ix.numbers {
            let mut r = owner(&e.param);
            r.extend([Arg::Real(e.value), Arg::Real(e.low), Arg::Real(e.high)]);
            numbers.rows.push(r);
        }
        for e in &ix.quantities {
            let mut r = owner(&e.param);
            r.extend([
                Arg::Real(e.value),
                Arg::Real(e.low),
                Arg::Real(e.high),
                opt_text(e.system.as_deref()),
                opt_text(e.code.as_deref()),
                opt_text(e.unit.as_deref()),
            ]);
            quantities.rows.push(r);
        }
        for e in &ix.uris {
            let mut r = owner(&e.param);
            r.push(Arg::Text(e.value.clone()));
            uris.rows.push(r);
        }
        if let Some(p) = v.patient_id.as_deref() {
            for rel in &v.class.relationships {
                relationships.rows.push(vec![
                    rt.clone(),
                    id.clone(),
                    Arg::Text(p.to_owned()),
                    Arg::Text(rel.org_id.clone()),
                    Arg::Text(rel.kind.as_str().to_owned()),
                    // Open relationships end at the largest instant, so the visibility test is
                    // one comparison (and no NULL, which PostgreSQL would type as text here).
                    Arg::Int(rel.ends.unwrap_or(i64::MAX)),
                ]);
            }
            // An unverified NHS number holds the person back exactly as an objection does.
            if v.class.objection || v.class.unverified_identity {
                objections
                    .rows
                    .push(vec![rt.clone(), id.clone(), Arg::Text(p.to_owned())]);
            }
        }
    }
    for t in [
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
        let refs: Vec<&PreparedVersion> = vs.iter().collect();
        for w in versions_statements(&refs) {
            super::super::assert_in_order(&w.statement);
        }
        let id = LogicalId::parse("obs-1").unwrap();
        for st in deletion_statements(ResourceType::Observation, &id, VersionId::FIRST.next(), 5) {
            super::super::assert_in_order(&st);
        }
    }

    fn statements(refs: &[&PreparedVersion]) -> Vec<Statement> {
        versions_statements(refs)
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
        let refs: Vec<&PreparedVersion> = vs.iter().collect();
        let ws = versions_statements(&refs);
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
    fn batches_split_into_a_few_statement_shapes() {
        assert_eq!(chunk_len(200, 7), 64);
        assert_eq!(chunk_len(10, 7), 8);
        assert_eq!(chunk_len(1, 7), 1);
        let vs: Vec<PreparedVersion> = (0..10).map(version).collect();
        let refs: Vec<&PreparedVersion> = vs.iter().collect();
        let sts = statements(&refs);
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
        let refs: Vec<&PreparedVersion> = vs.iter().collect();
        let sts = statements(&refs);
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
