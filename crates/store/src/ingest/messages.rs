//! Registered HL7 v2 senders, the log of processed messages (the ACK a resend gets again)
//! and when each organisation's feed last delivered.

use super::{FeedStatus, Hl7System, IngestReply, MessageRecord, opt, st, text};
use crate::cells::{Cell, Cols, Kind};
use crate::engine::SqlExec;
use crate::error::StoreError;
use crate::sql::{Arg, Statement};

pub(super) async fn put_system(
    exec: &mut dyn SqlExec,
    s: Hl7System,
) -> Result<IngestReply, StoreError> {
    exec.execute(&st(
        "INSERT INTO hl7_systems (id, name, org_id, ods, msh_application, msh_facility, created) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
        vec![
            text(&s.id),
            text(&s.name),
            text(&s.org_id),
            text(&s.ods),
            text(&s.msh_application),
            text(&s.msh_facility),
            Arg::Int(s.created),
        ],
    ))
    .await?;
    Ok(IngestReply::Done)
}

pub(super) async fn systems(exec: &mut dyn SqlExec) -> Result<IngestReply, StoreError> {
    let rows = exec
                .cells(
                    &st(
                        "SELECT id, name, org_id, ods, msh_application, msh_facility, created FROM hl7_systems ORDER BY id",
                        vec![],
                    ),
                    &[
                        Kind::Text,
                        Kind::Text,
                        Kind::Text,
                        Kind::Text,
                        Kind::Text,
                        Kind::Text,
                        Kind::Int,
                    ],
                )
                .await?;
    let systems = rows
        .into_iter()
        .map(|r| {
            let mut c = Cols(r.into_iter());
            Ok(Hl7System {
                id: c.text()?,
                name: c.text()?,
                org_id: c.text()?,
                ods: c.text()?,
                msh_application: c.text()?,
                msh_facility: c.text()?,
                created: c.int()?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(IngestReply::Systems(systems))
}

/// Logs a message's outcome; with `replace`, over the row logged before (a dead letter
/// replayed after a fix gets its new outcome and ACK).
pub(super) async fn put_message(
    exec: &mut dyn SqlExec,
    m: MessageRecord,
    replace: bool,
) -> Result<IngestReply, StoreError> {
    let on_conflict = if replace {
        " ON CONFLICT (sender, control_id) DO UPDATE SET received_at = excluded.received_at, \
         ack_code = excluded.ack_code, ack = excluded.ack, patient_id = excluded.patient_id"
    } else {
        ""
    };
    exec.execute(&st(
        &format!(
            "INSERT INTO hl7_messages (sender, control_id, received_at, ack_code, ack, patient_id) \
             VALUES ($1, $2, $3, $4, $5, $6){on_conflict}"
        ),
        vec![
            text(&m.sender),
            text(&m.control_id),
            Arg::Int(m.received_at),
            text(&m.ack_code),
            Arg::Bytes(m.ack),
            opt(m.patient_id.as_deref()),
        ],
    ))
    .await?;
    Ok(IngestReply::Done)
}

pub(super) async fn message(
    exec: &mut dyn SqlExec,
    sender: &str,
    control_id: &str,
) -> Result<IngestReply, StoreError> {
    let rows = exec
        .cells(
            &st(
                "SELECT sender, control_id, received_at, ack_code, ack, patient_id FROM hl7_messages \
                 WHERE sender = $1 AND control_id = $2",
                vec![text(sender), text(control_id)],
            ),
            &[
                Kind::Text,
                Kind::Text,
                Kind::Int,
                Kind::Text,
                Kind::Bytes,
                Kind::Text,
            ],
        )
        .await?;
    let Some(r) = rows.into_iter().next() else {
        return Ok(IngestReply::Message(None));
    };
    let mut c = Cols(r.into_iter());
    Ok(IngestReply::Message(Some(MessageRecord {
        sender: c.text()?,
        control_id: c.text()?,
        received_at: c.int()?,
        ack_code: c.text()?,
        ack: c.bytes()?,
        patient_id: c.opt_text()?,
    })))
}

const MESSAGE_COLUMNS: &[Kind] = &[
    Kind::Text,
    Kind::Text,
    Kind::Int,
    Kind::Text,
    Kind::Bytes,
    Kind::Text,
];

fn message_record(r: Vec<Cell>) -> Result<MessageRecord, StoreError> {
    let mut c = Cols(r.into_iter());
    Ok(MessageRecord {
        sender: c.text()?,
        control_id: c.text()?,
        received_at: c.int()?,
        ack_code: c.text()?,
        ack: c.bytes()?,
        patient_id: c.opt_text()?,
    })
}

/// Keys (or rows) per statement in [`IngestOp::Messages`] and [`IngestOp::PutMessages`] at the
/// most. Batches are cut into chunks of powers of two, so that the statements come in a
/// handful of shapes the drivers keep prepared.
const MESSAGES_CHUNK: usize = 128;

/// The largest power of two not above `n` (≥ 1), at most `max`.
fn chunk_shape(n: usize, max: usize) -> usize {
    if n >= max {
        max
    } else {
        1 << (usize::BITS - 1 - n.max(1).leading_zeros())
    }
}

pub(super) async fn messages(
    exec: &mut dyn SqlExec,
    keys: &[(String, String)],
) -> Result<IngestReply, StoreError> {
    let mut out = Vec::new();
    let mut rest = keys;
    while !rest.is_empty() {
        let n = chunk_shape(rest.len(), MESSAGES_CHUNK);
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        // One seek on the primary key per arm (an OR of pairs may not use the index).
        let mut s = Statement::default();
        let mut arms = Vec::with_capacity(n);
        for (sender, control_id) in chunk {
            let a = s.bind(text(sender));
            let b = s.bind(text(control_id));
            arms.push(format!(
                "SELECT sender, control_id, received_at, ack_code, ack, patient_id FROM hl7_messages \
                 WHERE sender = {a} AND control_id = {b}"
            ));
        }
        s.sql = arms.join(" UNION ALL ");
        for r in exec.cells(&s, MESSAGE_COLUMNS).await? {
            out.push(message_record(r)?);
        }
    }
    Ok(IngestReply::Messages(out))
}

pub(super) async fn put_messages(
    exec: &mut dyn SqlExec,
    ms: Vec<MessageRecord>,
) -> Result<(), StoreError> {
    let mut rows = ms.into_iter().peekable();
    let mut remaining = rows.len();
    while rows.peek().is_some() {
        let n = chunk_shape(remaining, MESSAGES_CHUNK);
        remaining -= n;
        let mut s = Statement::default();
        let mut tuples = Vec::with_capacity(n);
        for m in rows.by_ref().take(n) {
            let ps = [
                s.bind(text(&m.sender)),
                s.bind(text(&m.control_id)),
                s.bind(Arg::Int(m.received_at)),
                s.bind(text(&m.ack_code)),
                s.bind(Arg::Bytes(m.ack)),
                s.bind(opt(m.patient_id.as_deref())),
            ];
            tuples.push(format!("({})", ps.join(", ")));
        }
        s.sql = format!(
            "INSERT INTO hl7_messages (sender, control_id, received_at, ack_code, ack, patient_id) VALUES {}",
            tuples.join(", ")
        );
        exec.execute(&s).await?;
    }
    Ok(())
}

pub(super) async fn feed_status(exec: &mut dyn SqlExec) -> Result<IngestReply, StoreError> {
    // Per sending system, the newest message of its own (the log's key starts with the
    // sender), then per organisation the newest of its systems.
    let rows = exec
        .cells(
            &st(
                "SELECT s.ods, MAX((SELECT MAX(m.received_at) FROM hl7_messages m WHERE m.sender = s.id)) \
                 FROM hl7_systems s GROUP BY s.ods ORDER BY s.ods",
                vec![],
            ),
            &[Kind::Text, Kind::Int],
        )
        .await?;
    let out = rows
        .into_iter()
        .map(|r| {
            let mut c = Cols(r.into_iter());
            Ok(FeedStatus {
                ods: c.text()?,
                last_received: c.opt_int()?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(IngestReply::Feeds(out))
}
