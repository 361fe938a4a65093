//! The statements of the privacy officers' break-glass review queue, shared by both backends.
//! A grant is open while `reviewed_at` is NULL; a review is written once.

use super::{Arg, Statement};
use crate::error::StoreError;
use crate::model::{
    BreakGlassGrant, BreakGlassRecord, BreakGlassReview, ReviewOutcome, ReviewStatus,
};

/// The columns a grant is read with: six texts (`grant_id` … `reason_text`), two integers
/// (`granted_at`, `expires_at`), then the nullable review: `reviewed_by` (text), `reviewed_at`
/// (integer), `review_outcome` and `review_note` (text). See [`record`].
pub const GRANT_COLUMNS: &str = "b.grant_id, b.principal_key, b.org_id, b.patient_id, \
     b.reason_code, b.reason_text, b.granted_at, b.expires_at, b.reviewed_by, b.reviewed_at, \
     b.review_outcome, b.review_note";

/// The grants of organisation `org_id` in `status`, newest first, at most `limit`.
pub fn queue_statement(org_id: &str, status: ReviewStatus, limit: u32) -> Statement {
    let mut st = Statement::default();
    let org = st.text(org_id);
    let lim = st.bind(Arg::Int(i64::from(limit)));
    let status = match status {
        ReviewStatus::Open => " AND b.reviewed_at IS NULL",
        ReviewStatus::Reviewed => " AND b.reviewed_at IS NOT NULL",
        ReviewStatus::Any => "",
    };
    st.sql = format!(
        "SELECT {GRANT_COLUMNS} FROM break_glass b WHERE b.org_id = {org}{status} \
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

/// Records `review` on a grant that is still open; returns the grant id when it was (no row
/// when the grant is unknown or already reviewed, so two officers cannot both review it).
pub fn review_statement(grant_id: &str, review: &BreakGlassReview) -> Statement {
    let mut st = Statement::default();
    let by = st.text(&review.reviewer_key);
    let at = st.bind(Arg::Int(review.reviewed_at));
    let outcome = st.text(review.outcome.as_str());
    let note = st.text(&review.note);
    let id = st.text(grant_id);
    st.sql = format!(
        "UPDATE break_glass SET reviewed_by = {by}, reviewed_at = {at}, review_outcome = {outcome}, \
         review_note = {note} WHERE grant_id = {id} AND reviewed_at IS NULL RETURNING grant_id"
    );
    st
}

/// The columns of one grant row, as a backend reads them.
#[derive(Debug, Clone)]
pub struct GrantRow {
    /// `grant_id, principal_key, org_id, patient_id, reason_code, reason_text`.
    pub text: [String; 6],
    pub granted_at: i64,
    pub expires_at: i64,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<i64>,
    pub review_outcome: Option<String>,
    pub review_note: Option<String>,
}

/// Builds the record of one row, checking the review columns belong together.
pub fn record(row: GrantRow) -> Result<BreakGlassRecord, StoreError> {
    let [
        grant_id,
        principal_key,
        org_id,
        patient_id,
        reason_code,
        reason_text,
    ] = row.text;
    let review = match (row.reviewed_by, row.reviewed_at, row.review_outcome) {
        (Some(reviewer_key), Some(reviewed_at), Some(outcome)) => Some(BreakGlassReview {
            reviewer_key,
            reviewed_at,
            outcome: ReviewOutcome::parse(&outcome).ok_or_else(|| {
                StoreError::Backend(format!("unknown break-glass review outcome {outcome:?}"))
            })?,
            note: row.review_note.unwrap_or_default(),
        }),
        (None, None, None) => None,
        _ => {
            return Err(StoreError::Backend(
                "a break-glass grant has a partial review".into(),
            ));
        }
    };
    Ok(BreakGlassRecord {
        grant: BreakGlassGrant {
            grant_id,
            principal_key,
            org_id,
            patient_id,
            reason_code,
            reason_text,
            granted_at: row.granted_at,
            expires_at: row.expires_at,
        },
        review,
    })
}
