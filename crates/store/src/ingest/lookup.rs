//! Look-ups of the resource tables a message's matching and a merge need, inside the
//! write transaction.

use carerecord_fhir::ResourceType;

use super::{IngestReply, st, text};
use crate::cells::{Cols, Kind};
use crate::engine::{SqlExec, decode_key};
use crate::error::StoreError;

/// The current (not deleted) resources in one patient's compartment, the Patient included.
pub(super) async fn compartment(
    exec: &mut dyn SqlExec,
    patient_id: String,
) -> Result<IngestReply, StoreError> {
    let rows = exec
        .cells(
            &st(
                "SELECT resource_type, id FROM resources WHERE patient_id = $1 AND deleted = FALSE \
                         ORDER BY resource_type, id",
                vec![text(&patient_id)],
            ),
            &[Kind::Text, Kind::Text],
        )
        .await?;
    let keys = rows
        .into_iter()
        .map(|r| {
            let mut c = Cols(r.into_iter());
            decode_key(&c.text()?, &c.text()?)
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(IngestReply::Keys(keys))
}

/// Keys per statement in [`IngestOp::Identified`]: four arguments each, well under
/// SQLite's and PostgreSQL's limits on bound parameters.
const IDENTIFIED_CHUNK: usize = 100;

/// One `UNION ALL` arm per key rather than an OR-list: each arm is a seek on
/// `search_token_value` (type, param, code, system), which SQLite does not do for OR terms.
pub(super) async fn identified(
    exec: &mut dyn SqlExec,
    keys: &[(ResourceType, String, String)],
) -> Result<IngestReply, StoreError> {
    let mut out = Vec::new();
    for chunk in keys.chunks(IDENTIFIED_CHUNK) {
        let mut arms = Vec::with_capacity(chunk.len());
        let mut args = Vec::with_capacity(chunk.len() * 4);
        for (rt, system, value) in chunk {
            let n = args.len();
            arms.push(format!(
                "SELECT t.resource_type, t.id, t.system, t.code FROM search_token t \
                 JOIN resources r ON r.resource_type = t.resource_type AND r.id = t.id \
                 WHERE t.resource_type = ${} AND t.param = ${} AND t.code = ${} AND t.system = ${} \
                 AND r.deleted = FALSE",
                n + 1,
                n + 2,
                n + 3,
                n + 4
            ));
            args.push(text(rt.as_str()));
            args.push(text("identifier"));
            args.push(text(value));
            args.push(text(system));
        }
        let rows = exec
            .cells(
                &st(&arms.join(" UNION ALL "), args),
                &[Kind::Text, Kind::Text, Kind::Text, Kind::Text],
            )
            .await?;
        for r in rows {
            let mut c = Cols(r.into_iter());
            let key = decode_key(&c.text()?, &c.text()?)?;
            out.push((key, c.text()?, c.text()?));
        }
    }
    Ok(IngestReply::Identified(out))
}
