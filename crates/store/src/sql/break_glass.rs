//! The statements of the privacy officers' break-glass review queue, shared by both backends.
//! A grant is open while `reviewed_at` is NULL; a review is written once.

use super::{Arg, Statement};
use crate::model::{BreakGlassReview, ReviewStatus};

/// The columns a grant is read with: six texts (`grant_id` … `reason_text`), two integers
/// (`granted_at`, `expires_at`), then the nullable review: `reviewed_by` (text), `reviewed_at`
/// (integer), `review_outcome` and `review_note` (text). Decoded by `crate::break_glass`.
pub const GRANT_COLUMNS: &str = "b.grant_id, b.principal_key, b.org_id, b.patient_id, \
     b.reason_code, b.reason_text, b.granted_at, b.expires_at, b.reviewed_by, b.reviewed_at, \
     b.review_outcome, b.review_note";

/// The grants of organisation `org_id` in `status`, newest first, at most `limit`; after
/// `(granted_at, grant_id)`, the last grant of the previous page, when given (keyset paging:
/// page N costs what page 1 costs, and a grant made meanwhile does not shift the pages).
pub fn queue_statement(
    org_id: &str,
    status: ReviewStatus,
    limit: u32,
    after: Option<(i64, &str)>,
) -> Statement {
    let mut st = Statement::default();
    let org = st.text(org_id);
    let status = match status {
        ReviewStatus::Open => " AND b.reviewed_at IS NULL",
        ReviewStatus::Reviewed => " AND b.reviewed_at IS NOT NULL",
        ReviewStatus::Any => "",
    };
    let keyset = match after {
        Some((at, id)) => {
            // Each placeholder once: SQLite binds them in order of appearance.
            let before = st.bind(Arg::Int(at));
            let same = st.bind(Arg::Int(at));
            let id = st.text(id);
            format!(
                " AND (b.granted_at < {before} OR (b.granted_at = {same} AND b.grant_id < {id}))"
            )
        }
        None => String::new(),
    };
    let lim = super::limit(i64::from(limit));
    st.sql = format!(
        "SELECT {GRANT_COLUMNS} FROM break_glass b WHERE b.org_id = {org}{status}{keyset} \
         ORDER BY b.granted_at DESC, b.grant_id DESC LIMIT {lim}"
    );
    st
}

/// One grant by id.
pub fn grant_statement(grant_id: &str) -> Statement {
    let mut st = Statement::default();
    let id = st.text(grant_id);
    st.sql = format!("SELECT {GRANT_COLUMNS} FROM break_glass b WHERE b.grant_id = {id}");
    st
}

/// Records `review` on a grant that is still open: changes one row when it was, none when the
/// grant is unknown or already reviewed (so two officers cannot both review it).
pub fn review_statement(grant_id: &str, review: &BreakGlassReview) -> Statement {
    let mut st = Statement::default();
    let by = st.text(&review.reviewer_key);
    let at = st.bind(Arg::Int(review.reviewed_at));
    let outcome = st.text(review.outcome.as_str());
    let note = st.text(&review.note);
    let id = st.text(grant_id);
    st.sql = format!(
        "UPDATE break_glass SET reviewed_by = {by}, reviewed_at = {at}, review_outcome = {outcome}, \
         review_note = {note} WHERE grant_id = {id} AND reviewed_at IS NULL"
    );
    st
}
