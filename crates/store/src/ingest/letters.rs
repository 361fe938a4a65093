//! Dead letters: messages that could not be processed, kept whole for a replay.

use super::{DeadLetter, DeadLetterStatus, IngestReply, opt, returned_id, st, text};
use crate::cells::{Cols, Kind};
use crate::engine::SqlExec;
use crate::error::StoreError;
use crate::sql::{Arg, Statement};

pub(super) async fn put(
    exec: &mut dyn SqlExec,
    received_at: i64,
    sender: Option<String>,
    control_id: Option<String>,
    reason: String,
    raw: Vec<u8>,
) -> Result<IngestReply, StoreError> {
    let rows = exec
        .cells(
            &st(
                "INSERT INTO dead_letters (received_at, sender, control_id, reason, raw, status, attempts) \
                 VALUES ($1, $2, $3, $4, $5, 'open', 0) RETURNING id",
                vec![
                    Arg::Int(received_at),
                    opt(sender.as_deref()),
                    opt(control_id.as_deref()),
                    text(&reason),
                    Arg::Bytes(raw),
                ],
            ),
            &[Kind::Int],
        )
        .await?;
    returned_id(rows)
}

/// Records a replay: success marks it replayed; failure keeps it open with the new reason.
pub(super) async fn replayed(
    exec: &mut dyn SqlExec,
    id: i64,
    at: i64,
    failure: Option<String>,
) -> Result<IngestReply, StoreError> {
    let statement = match failure {
        None => st(
            "UPDATE dead_letters SET status = 'replayed', attempts = attempts + 1, resolved_at = $1 WHERE id = $2",
            vec![Arg::Int(at), Arg::Int(id)],
        ),
        Some(reason) => st(
            "UPDATE dead_letters SET reason = $1, attempts = attempts + 1 WHERE id = $2",
            vec![text(&reason), Arg::Int(id)],
        ),
    };
    if exec.execute(&statement).await? == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(IngestReply::Done)
}

pub(super) enum LetterFilter {
    Id(i64),
    Page {
        status: Option<DeadLetterStatus>,
        after_id: i64,
        limit: u32,
    },
}

pub(super) async fn dead_letters(
    exec: &mut dyn SqlExec,
    f: LetterFilter,
) -> Result<IngestReply, StoreError> {
    let mut s = Statement::default();
    let mut sql =
        "SELECT id, received_at, sender, control_id, reason, raw, status, attempts, resolved_at \
                   FROM dead_letters WHERE "
            .to_owned();
    match f {
        LetterFilter::Page {
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
        LetterFilter::Id(id) => {
            let p = s.bind(Arg::Int(id));
            sql.push_str(&format!("id = {p}"));
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
                Kind::Bytes,
                Kind::Text,
                Kind::Int,
                Kind::Int,
            ],
        )
        .await?;
    let out = rows
        .into_iter()
        .map(|r| {
            let mut c = Cols(r.into_iter());
            Ok(DeadLetter {
                id: c.int()?,
                received_at: c.int()?,
                sender: c.opt_text()?,
                control_id: c.opt_text()?,
                reason: c.text()?,
                raw: c.bytes()?,
                status: DeadLetterStatus::parse(&c.text()?)?,
                attempts: c.int()?,
                resolved_at: c.opt_int()?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(IngestReply::DeadLetters(out))
}
