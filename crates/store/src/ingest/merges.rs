//! Patient merges (an HL7 A40, or a linked review item) and their undoing.

use super::{IngestReply, MergeRecord, returned_id, st, text};
use crate::cells::{Cols, Kind};
use crate::engine::SqlExec;
use crate::error::StoreError;
use crate::sql::Arg;

pub(super) async fn put(
    exec: &mut dyn SqlExec,
    at: i64,
    survivor_id: String,
    merged_id: String,
    cause: String,
    actor: String,
    moved: Vec<String>,
) -> Result<IngestReply, StoreError> {
    let moved = serde_json::to_string(&moved).map_err(|e| StoreError::Backend(e.to_string()))?;
    let rows = exec
        .cells(
            &st(
                "INSERT INTO patient_merges (at, survivor_id, merged_id, cause, actor, moved) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                vec![
                    Arg::Int(at),
                    text(&survivor_id),
                    text(&merged_id),
                    text(&cause),
                    text(&actor),
                    Arg::Text(moved),
                ],
            ),
            &[Kind::Int],
        )
        .await?;
    returned_id(rows)
}

/// Marks a merge undone; `NotFound` if it was undone already.
pub(super) async fn undo(
    exec: &mut dyn SqlExec,
    id: i64,
    at: i64,
) -> Result<IngestReply, StoreError> {
    let n = exec
        .execute(&st(
            "UPDATE patient_merges SET undone_at = $1 WHERE id = $2 AND undone_at IS NULL",
            vec![Arg::Int(at), Arg::Int(id)],
        ))
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(IngestReply::Done)
}

pub(super) enum MergeFilter {
    Id(i64),
    Patient(String),
}

pub(super) async fn merges(
    exec: &mut dyn SqlExec,
    f: MergeFilter,
) -> Result<IngestReply, StoreError> {
    let base = "SELECT id, at, survivor_id, merged_id, cause, actor, moved, undone_at FROM patient_merges WHERE ";
    let s = match f {
        MergeFilter::Id(id) => st(&format!("{base}id = $1"), vec![Arg::Int(id)]),
        MergeFilter::Patient(p) => st(
            &format!("{base}survivor_id = $1 OR merged_id = $2 ORDER BY id"),
            vec![text(&p), text(&p)],
        ),
    };
    let rows = exec
        .cells(
            &s,
            &[
                Kind::Int,
                Kind::Int,
                Kind::Text,
                Kind::Text,
                Kind::Text,
                Kind::Text,
                Kind::Text,
                Kind::Int,
            ],
        )
        .await?;
    let out = rows
        .into_iter()
        .map(|r| {
            let mut c = Cols(r.into_iter());
            Ok(MergeRecord {
                id: c.int()?,
                at: c.int()?,
                survivor_id: c.text()?,
                merged_id: c.text()?,
                cause: c.text()?,
                actor: c.text()?,
                moved: serde_json::from_str(&c.text()?)
                    .map_err(|e| StoreError::Backend(format!("merge record: {e}")))?,
                undone_at: c.opt_int()?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(IngestReply::Merges(out))
}
