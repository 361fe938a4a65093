//! The identity-matching review queue: uncertain matches waiting for a person to decide.

use super::{IngestReply, ReviewItem, ReviewStatus, returned_id, st, text};
use crate::cells::{Cols, Kind};
use crate::engine::SqlExec;
use crate::error::StoreError;
use crate::sql::{Arg, Statement};

pub(super) async fn put(
    exec: &mut dyn SqlExec,
    created_at: i64,
    source_ods: String,
    patient_id: String,
    candidate_id: String,
    score: i64,
    reasons: String,
) -> Result<IngestReply, StoreError> {
    let rows = exec
        .cells(
            &st(
                "INSERT INTO match_reviews (created_at, source_ods, patient_id, candidate_id, score, reasons, status) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'open') RETURNING id",
                vec![
                    Arg::Int(created_at),
                    text(&source_ods),
                    text(&patient_id),
                    text(&candidate_id),
                    Arg::Int(score),
                    text(&reasons),
                ],
            ),
            &[Kind::Int],
        )
        .await?;
    returned_id(rows)
}

/// Decides an open review item; `NotFound` if it is not open.
pub(super) async fn decide(
    exec: &mut dyn SqlExec,
    id: i64,
    status: ReviewStatus,
    by: String,
    at: i64,
    merge_id: Option<i64>,
) -> Result<IngestReply, StoreError> {
    let n = exec
        .execute(&st(
            "UPDATE match_reviews SET status = $1, decided_by = $2, decided_at = $3, merge_id = CAST($4 AS BIGINT) \
             WHERE id = $5 AND status = 'open'",
            vec![
                text(status.as_str()),
                text(&by),
                Arg::Int(at),
                merge_id.map_or(Arg::Null, Arg::Int),
                Arg::Int(id),
            ],
        ))
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(IngestReply::Done)
}

pub(super) enum ReviewFilter {
    Id(i64),
    Page {
        status: Option<ReviewStatus>,
        after_id: i64,
        limit: u32,
    },
}

pub(super) async fn reviews(
    exec: &mut dyn SqlExec,
    f: ReviewFilter,
) -> Result<IngestReply, StoreError> {
    let mut s = Statement::default();
    let mut sql =
        "SELECT id, created_at, source_ods, patient_id, candidate_id, score, reasons, status, \
                   decided_at, decided_by, merge_id FROM match_reviews WHERE "
            .to_owned();
    match f {
        ReviewFilter::Id(id) => {
            let p = s.bind(Arg::Int(id));
            sql.push_str(&format!("id = {p}"));
        }
        ReviewFilter::Page {
            status,
            after_id,
            limit,
        } => {
            let p = s.bind(Arg::Int(after_id));
            sql.push_str(&format!("id > {p}"));
            if let Some(status) = status {
                let p = s.bind(text(status.as_str()));
                sql.push_str(&format!(" AND status = {p}"));
            }
            let p = crate::sql::limit(i64::from(limit));
            sql.push_str(&format!(" ORDER BY id LIMIT {p}"));
        }
    }
    s.sql = sql;
    let rows = exec
        .cells(
            &s,
            &[
                Kind::Int,
                Kind::Int,
                Kind::Text,
                Kind::Text,
                Kind::Text,
                Kind::Int,
                Kind::Text,
                Kind::Text,
                Kind::Int,
                Kind::Text,
                Kind::Int,
            ],
        )
        .await?;
    let out = rows
        .into_iter()
        .map(|r| {
            let mut c = Cols(r.into_iter());
            Ok(ReviewItem {
                id: c.int()?,
                created_at: c.int()?,
                source_ods: c.text()?,
                patient_id: c.text()?,
                candidate_id: c.text()?,
                score: c.int()?,
                reasons: c.text()?,
                status: ReviewStatus::parse(&c.text()?)?,
                decided_at: c.opt_int()?,
                decided_by: c.opt_text()?,
                merge_id: c.opt_int()?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(IngestReply::Reviews(out))
}
