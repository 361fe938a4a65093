//! The privacy officers' break-glass review queue, written once for both backends over a
//! connection ([`SqlExec`]), as [`crate::ingest`] is: the statements are
//! [`crate::sql::break_glass`]'s, the decoding is here.

use crate::cells::{Cell, Cols, Kind};
use crate::engine::SqlExec;
use crate::error::StoreError;
use crate::model::{
    BreakGlassGrant, BreakGlassRecord, BreakGlassReview, Page, ReviewOutcome, ReviewStatus,
};
use crate::sql::Cursor;
use crate::sql::break_glass::{grant_statement, queue_statement, review_statement};

/// The kinds of [`crate::sql::break_glass::GRANT_COLUMNS`].
const GRANT_KINDS: [Kind; 12] = [
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Int,
    Kind::Int,
    Kind::Text,
    Kind::Int,
    Kind::Text,
    Kind::Text,
];

/// One grant row, checking that the review columns belong together.
fn decode(row: Vec<Cell>) -> Result<BreakGlassRecord, StoreError> {
    let mut c = Cols(row.into_iter());
    let grant = BreakGlassGrant {
        grant_id: c.text()?,
        principal_key: c.text()?,
        org_id: c.text()?,
        patient_id: c.text()?,
        reason_code: c.text()?,
        reason_text: c.text()?,
        granted_at: c.int()?,
        expires_at: c.int()?,
    };
    let (by, at, outcome, note) = (c.opt_text()?, c.opt_int()?, c.opt_text()?, c.opt_text()?);
    let review = match (by, at, outcome) {
        (Some(reviewer_key), Some(reviewed_at), Some(outcome)) => Some(BreakGlassReview {
            reviewer_key,
            reviewed_at,
            outcome: ReviewOutcome::parse(&outcome).ok_or_else(|| {
                StoreError::Backend(format!("unknown break-glass review outcome {outcome:?}"))
            })?,
            note: note.unwrap_or_default(),
        }),
        (None, None, None) => None,
        _ => {
            return Err(StoreError::Backend(
                "a break-glass grant has a partial review".into(),
            ));
        }
    };
    Ok(BreakGlassRecord { grant, review })
}

/// The cursor of the page after `last`.
fn cursor_after(last: &BreakGlassGrant) -> String {
    Cursor {
        values: vec![Some(last.granted_at.to_string())],
        id: last.grant_id.clone(),
    }
    .encode()
}

/// Where a cursor says the previous page stopped: `(granted_at, grant_id)`.
fn decode_cursor(s: &str) -> Result<(i64, String), StoreError> {
    let c = Cursor::decode(s)?;
    match c.values.as_slice() {
        [Some(at)] => at
            .parse()
            .map(|at| (at, c.id))
            .map_err(|_| StoreError::InvalidCursor),
        _ => Err(StoreError::InvalidCursor),
    }
}

/// A page of organisation `org_id`'s grants in `status`, newest first, at most `limit`, after
/// `cursor` (the previous page's `next_cursor`). One row more than asked for is read, so the
/// last page carries no cursor.
pub async fn queue(
    exec: &mut dyn SqlExec,
    org_id: &str,
    status: ReviewStatus,
    limit: u32,
    cursor: Option<&str>,
) -> Result<Page<BreakGlassRecord>, StoreError> {
    let after = cursor.map(decode_cursor).transpose()?;
    let limit = limit.max(1);
    let st = queue_statement(
        org_id,
        status,
        limit.saturating_add(1),
        after.as_ref().map(|(at, id)| (*at, id.as_str())),
    );
    let mut items = exec
        .cells(&st, &GRANT_KINDS)
        .await?
        .into_iter()
        .map(decode)
        .collect::<Result<Vec<_>, _>>()?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = if more {
        items.last().map(|r| cursor_after(&r.grant))
    } else {
        None
    };
    Ok(Page {
        items,
        next_cursor,
        total: None,
        withheld: 0,
    })
}

/// One grant by id.
pub async fn grant(
    exec: &mut dyn SqlExec,
    grant_id: &str,
) -> Result<Option<BreakGlassRecord>, StoreError> {
    exec.cells(&grant_statement(grant_id), &GRANT_KINDS)
        .await?
        .into_iter()
        .next()
        .map(decode)
        .transpose()
}

/// Records `review` on grant `grant_id` if it is still open (inside the caller's transaction);
/// `false` when it is unknown or was reviewed first by someone else.
pub async fn review(
    exec: &mut dyn SqlExec,
    grant_id: &str,
    review: &BreakGlassReview,
) -> Result<bool, StoreError> {
    Ok(exec.execute(&review_statement(grant_id, review)).await? == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_cursor_round_trips_and_a_foreign_one_is_refused() {
        let g = BreakGlassGrant {
            grant_id: "bg-1".into(),
            principal_key: "user:u@org".into(),
            org_id: "org".into(),
            patient_id: "p".into(),
            reason_code: "emergency".into(),
            reason_text: "x".into(),
            granted_at: 1_764_000_000_000_000,
            expires_at: 1_764_000_000_000_001,
        };
        let c = cursor_after(&g);
        assert_eq!(
            decode_cursor(&c).unwrap(),
            (1_764_000_000_000_000, "bg-1".to_owned())
        );
        let search = Cursor {
            values: vec![Some("not a number".into())],
            id: "x".into(),
        }
        .encode();
        assert!(matches!(
            decode_cursor(&search),
            Err(StoreError::InvalidCursor)
        ));
        assert!(matches!(
            decode_cursor("garbage"),
            Err(StoreError::InvalidCursor)
        ));
    }
}
