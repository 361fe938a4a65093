//! The access policy's [`Visibility`] compiled into SQL: a boolean expression over one row of
//! `resources` or `resource_history` (by alias) that every statement reading records adds to
//! its `WHERE` clause. Because the rule is in the query, counts, pages, cursors, includes and
//! chains can only ever see visible rows — nothing is filtered after the fact.
//!
//! Placeholders are bound in order of appearance, as everywhere in this module.

use carerecord_access::{DISCHARGE_SUMMARY_LOINC, DISCHARGE_SUMMARY_SNOMED, Scope, Visibility};

use super::{Arg, Statement};

/// Which rows to match: those the principal may see, or those withheld from them only because
/// they are sensitive (to say "N items withheld" without showing them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Visible,
    Withheld,
    /// The sensitive rows of other organisations that `Withheld` would count, whether or not
    /// their person is in care: a superset of `Withheld` asked without the care probes, so
    /// that when it is empty (as for most searches) nothing more needs asking.
    MaybeWithheld,
}

/// The condition on row `a` for `vis`, or `None` when everything is visible.
pub fn condition(a: &str, vis: &Visibility, mode: Mode, st: &mut Statement) -> Option<String> {
    condition_answered(a, vis, mode, st, None)
}

/// Whether one person is in care, answered by an expression of the statement itself (a
/// column the statement computes once), for a scope that has not been told ([`Scope::known`]).
#[derive(Debug, Clone, Copy)]
pub struct Answered<'a> {
    pub patient: &'a str,
    pub expr: &'a str,
    /// As [`carerecord_access::KnownCare::alone`].
    pub alone: bool,
}

/// [`condition`], with `answered` deciding that person's rows when given.
pub fn condition_answered(
    a: &str,
    vis: &Visibility,
    mode: Mode,
    st: &mut Statement,
    answered: Option<Answered<'_>>,
) -> Option<String> {
    match vis {
        Visibility::All => match mode {
            Mode::Visible => None,
            Mode::Withheld | Mode::MaybeWithheld => Some("1 = 0".to_owned()),
        },
        Visibility::Scoped(s) => Some(scoped(a, s, mode, st, answered)),
    }
}

/// Appends ` AND <condition>` to `sql` when there is a condition.
pub fn and(sql: &mut String, a: &str, vis: &Visibility, st: &mut Statement) {
    if let Some(c) = condition(a, vis, Mode::Visible, st) {
        sql.push_str(" AND ");
        sql.push_str(&c);
    }
}

fn scoped(
    a: &str,
    s: &Scope,
    mode: Mode,
    st: &mut Statement,
    answered: Option<Answered<'_>>,
) -> String {
    let mut parts = Vec::new();
    if let Some(types) = &s.types {
        if types.is_empty() {
            return "1 = 0".to_owned();
        }
        let list: Vec<String> = types.iter().map(|t| st.text(t.as_str())).collect();
        parts.push(format!("{a}.resource_type IN ({})", list.join(", ")));
    }
    match mode {
        Mode::Visible => {
            let ods = st.text(&s.org_ods);
            let cared = in_care(a, s, st, answered);
            parts.push(format!(
                "({a}.source_ods = {ods} OR ({a}.sensitive = FALSE AND ({a}.patient_id IS NULL OR {cared})))"
            ));
        }
        Mode::Withheld => {
            let ods = st.text(&s.org_ods);
            let cared = in_care(a, s, st, answered);
            parts.push(format!(
                "{a}.sensitive = TRUE AND ({a}.source_ods IS NULL OR {a}.source_ods <> {ods}) AND ({a}.patient_id IS NULL OR {cared})"
            ));
        }
        Mode::MaybeWithheld => {
            let ods = st.text(&s.org_ods);
            parts.push(format!(
                "{a}.sensitive = TRUE AND ({a}.source_ods IS NULL OR {a}.source_ods <> {ods})"
            ));
        }
    }
    if let Some(p) = &s.patient {
        let p = st.text(p);
        parts.push(format!("({a}.patient_id IS NULL OR {a}.patient_id = {p})"));
    }
    if s.latest_discharge_only {
        parts.push(latest_discharge(a));
    }
    format!("({})", parts.join(" AND "))
}

/// The row's patient has not objected and is in the organisation's care, or under a live
/// break-glass grant of this principal. Written as scalar-subquery probes (see `has_row` in
/// the parent module): each is one index seek per row. When the store has already asked this
/// for one person ([`Scope::known`]), that person's rows take the answer instead of the
/// probes (a `CASE` both databases decide before evaluating either branch).
fn in_care(a: &str, s: &Scope, st: &mut Statement, answered: Option<Answered<'_>>) -> String {
    let (patient, answer, alone) = match (&s.known, answered) {
        (Some(k), _) => (
            k.patient.as_str(),
            if k.in_care { "TRUE" } else { "FALSE" },
            k.alone,
        ),
        (None, Some(x)) => (x.patient, x.expr, x.alone),
        (None, None) => return care_probes(a, s, st),
    };
    let p = st.text(patient);
    // Without the probes the statement's plan has no subqueries to start for each execution.
    let others = if alone {
        "FALSE".to_owned()
    } else {
        care_probes(a, s, st)
    };
    format!("(CASE WHEN {a}.patient_id = {p} THEN {answer} ELSE {others} END)")
}

fn care_probes(a: &str, s: &Scope, st: &mut Statement) -> String {
    let org = st.text(&s.org_id);
    let cutoff = st.bind(Arg::Int(s.encounter_cutoff));
    let now = st.bind(Arg::Int(s.now));
    let key = st.text(&s.principal_key);
    let now2 = st.bind(Arg::Int(s.now));
    format!(
        "((SELECT 1 FROM objections o WHERE o.patient_id = {a}.patient_id LIMIT 1) IS NULL \
         AND ((SELECT 1 FROM care_relationships c WHERE c.patient_id = {a}.patient_id AND c.org_id = {org} \
               AND c.ends > (CASE WHEN c.kind = 'encounter' THEN {cutoff} ELSE {now} END) LIMIT 1) IS NOT NULL \
           OR (SELECT 1 FROM break_glass b WHERE b.patient_id = {a}.patient_id AND b.principal_key = {key} AND b.expires_at > {now2} LIMIT 1) IS NOT NULL))"
    )
}

/// A query answering 1 when `patient` is in the care of `s`'s organisation (or under a live
/// break-glass grant of its principal) and has not objected, else 0 — the question
/// [`in_care`] asks of every row, asked once.
pub fn ask(patient: &str, s: &Scope, st: &mut Statement) -> String {
    let p = st.text(patient);
    let probes = care_probes("kp", s, st);
    format!("SELECT COUNT(*) FROM (SELECT CAST({p} AS TEXT) AS patient_id) kp WHERE {probes}")
}

/// [`ask`] as a statement of its own.
pub fn in_care_statement(patient: &str, s: &Scope) -> Statement {
    let mut st = Statement::default();
    st.sql = ask(patient, s, &mut st);
    st
}

/// A Composition is shown only if it is the person's latest discharge summary (by date). The
/// codes are constants, written into the SQL text.
fn latest_discharge(a: &str) -> String {
    format!(
        "({a}.resource_type <> 'Composition' OR {a}.id = (SELECT d.id FROM search_date d \
         WHERE d.patient_id = {a}.patient_id AND d.resource_type = 'Composition' AND d.param = 'date' \
         AND (SELECT 1 FROM search_token t WHERE t.resource_type = 'Composition' AND t.id = d.id AND t.param = 'type' \
              AND t.code IN ('{DISCHARGE_SUMMARY_SNOMED}', '{DISCHARGE_SUMMARY_LOINC}') LIMIT 1) IS NOT NULL \
         ORDER BY d.low DESC, d.id DESC LIMIT 1))"
    )
}
