//! The gathering tables (migration `0007_ingest.sql`): registered HL7 v2 senders, the log of
//! processed messages, dead letters, the identity-matching review queue and patient merges.
//!
//! None of it is FHIR, so it is not in the resource tables; but the message log and the review
//! queue must commit in the same transaction as the resources a message carries, so the writes
//! go through [`StoreTx::ingest`](crate::StoreTx::ingest) and the reads through
//! [`ResourceStore::ingest_read`](crate::ResourceStore::ingest_read). Each backend only hands
//! over a connection ([`SqlExec`]); the statements and the decoding are written once, here.
//! Every instant is microseconds since the Unix epoch.

use carerecord_fhir::ResourceType;

use crate::engine::{SqlExec, decode_key};
use crate::error::StoreError;
use crate::model::ResourceKey;
use crate::sql::{Arg, Statement};

/// A sending system, known by its `MSH-3` (application) and `MSH-4` (facility).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hl7System {
    pub id: String,
    pub name: String,
    /// The organisation it sends for (`Organization/{org_id}`).
    pub org_id: String,
    /// That organisation's ODS code: the source of what the system sends.
    pub ods: String,
    pub msh_application: String,
    pub msh_facility: String,
    pub created: i64,
}

/// A processed message and the acknowledgement it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// The registered system's id (or `MSH-3^MSH-4` when it was refused before it was known).
    pub sender: String,
    /// `MSH-10`.
    pub control_id: String,
    pub received_at: i64,
    /// `AA`, `AE` or `AR`.
    pub ack_code: String,
    /// The ACK as sent, without MLLP framing: a resend gets exactly these bytes again.
    pub ack: Vec<u8>,
    pub patient_id: Option<String>,
}

/// How fresh one organisation's HL7 v2 feed is: when a message from any of its registered
/// sending systems was last logged (`None` when none has been yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedStatus {
    /// The organisation's ODS code: the source tag of what its feeds send.
    pub ods: String,
    pub last_received: Option<i64>,
}

/// Where a dead letter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterStatus {
    /// Not processed yet.
    Open,
    /// Replayed successfully.
    Replayed,
}

impl DeadLetterStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterStatus::Open => "open",
            DeadLetterStatus::Replayed => "replayed",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "open" => Ok(DeadLetterStatus::Open),
            "replayed" => Ok(DeadLetterStatus::Replayed),
            _ => Err(StoreError::Backend(format!(
                "unknown dead-letter status {s}"
            ))),
        }
    }
}

/// A message that could not be processed, kept whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub received_at: i64,
    pub sender: Option<String>,
    pub control_id: Option<String>,
    /// Why it failed (names segment and field; never message content).
    pub reason: String,
    /// The bytes as received, without MLLP framing.
    pub raw: Vec<u8>,
    pub status: DeadLetterStatus,
    /// Replays tried so far.
    pub attempts: i64,
    pub resolved_at: Option<i64>,
}

/// Where a review item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewStatus {
    Open,
    /// The reviewer confirmed the match: the new record was merged into the candidate.
    Linked,
    /// The reviewer said they are different people.
    Rejected,
}

impl ReviewStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Open => "open",
            ReviewStatus::Linked => "linked",
            ReviewStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "open" => Ok(ReviewStatus::Open),
            "linked" => Ok(ReviewStatus::Linked),
            "rejected" => Ok(ReviewStatus::Rejected),
            _ => Err(StoreError::Backend(format!("unknown review status {s}"))),
        }
    }
}

/// An uncertain identity match waiting for a person to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewItem {
    pub id: i64,
    pub created_at: i64,
    /// The ODS code of the source that sent the person.
    pub source_ods: String,
    /// The Patient created for the incoming person.
    pub patient_id: String,
    /// The existing Patient it resembles.
    pub candidate_id: String,
    pub score: i64,
    /// Which fields agreed (field names only, no values).
    pub reasons: String,
    pub status: ReviewStatus,
    pub decided_at: Option<i64>,
    pub decided_by: Option<String>,
    pub merge_id: Option<i64>,
}

/// A merge: `merged_id` absorbed into `survivor_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRecord {
    pub id: i64,
    pub at: i64,
    pub survivor_id: String,
    pub merged_id: String,
    /// `hl7-a40` or `review`.
    pub cause: String,
    pub actor: String,
    /// The versions the merge wrote, as `Type/id/_history/version`.
    pub moved: Vec<String>,
    pub undone_at: Option<i64>,
}

/// A change to the gathering tables, inside a write transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOp {
    /// Registers a sending system (`AlreadyExists` if its MSH-3/MSH-4 pair is taken).
    PutSystem(Hl7System),
    /// The log row of a message, if it was processed before (inside the transaction).
    Message { sender: String, control_id: String },
    /// Logs a processed message (`AlreadyExists` if it was logged before).
    PutMessage(MessageRecord),
    /// Logs a message's outcome, replacing the row logged before if there is one: a dead
    /// letter replayed after a fix gets its new outcome and ACK.
    ReplaceMessage(MessageRecord),
    /// Keeps a message that could not be processed; answers its id.
    PutDeadLetter {
        received_at: i64,
        sender: Option<String>,
        control_id: Option<String>,
        reason: String,
        raw: Vec<u8>,
    },
    /// Records a replay: success marks it replayed; failure keeps it open with the new reason.
    ReplayedDeadLetter {
        id: i64,
        at: i64,
        failure: Option<String>,
    },
    /// Queues a review item; answers its id.
    PutReview {
        created_at: i64,
        source_ods: String,
        patient_id: String,
        candidate_id: String,
        score: i64,
        reasons: String,
    },
    /// One review item (inside the transaction).
    Review { id: i64 },
    /// Decides an open review item; `NotFound` if it is not open.
    DecideReview {
        id: i64,
        status: ReviewStatus,
        by: String,
        at: i64,
        merge_id: Option<i64>,
    },
    /// Records a merge; answers its id.
    PutMerge {
        at: i64,
        survivor_id: String,
        merged_id: String,
        cause: String,
        actor: String,
        moved: Vec<String>,
    },
    /// One merge (inside the transaction).
    Merge { id: i64 },
    /// Marks a merge undone; `NotFound` if it was undone already.
    UndoMerge { id: i64, at: i64 },
    /// The current (not deleted) resources in one patient's compartment, the Patient itself
    /// included: what a merge re-points.
    Compartment { patient_id: String },
    /// The current (not deleted) resources carrying each identifier `(type, system, value)`,
    /// answered as [`IngestReply::Identified`] in one statement: an HL7 message's entries are
    /// looked up together instead of one search (and one read) per key.
    Identified {
        keys: Vec<(ResourceType, String, String)>,
    },
    /// The log rows of those of these messages (sender, control id) processed before, inside
    /// the transaction, in one statement: answered as [`IngestReply::Messages`].
    Messages { keys: Vec<(String, String)> },
    /// Logs several processed messages in one statement (`AlreadyExists` if one was logged
    /// before).
    PutMessages(Vec<MessageRecord>),
}

impl IngestOp {
    /// Whether the operation reads the resource tables (and so must see writes a transaction
    /// has held back); the others touch only the gathering tables.
    pub fn reads_resources(&self) -> bool {
        matches!(
            self,
            IngestOp::Compartment { .. } | IngestOp::Identified { .. }
        )
    }
}

/// A read of the gathering tables, outside any write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestQuery {
    Systems,
    Message {
        sender: String,
        control_id: String,
    },
    /// Dead letters with ids above `after_id`, oldest first; of one status or all.
    DeadLetters {
        status: Option<DeadLetterStatus>,
        after_id: i64,
        limit: u32,
    },
    DeadLetter {
        id: i64,
    },
    /// Review items with ids above `after_id`, oldest first; of one status or all.
    Reviews {
        status: Option<ReviewStatus>,
        after_id: i64,
        limit: u32,
    },
    Review {
        id: i64,
    },
    /// The merges a patient took part in (either side), oldest first.
    Merges {
        patient_id: String,
    },
    /// Every organisation with a registered sending system and when its feed last delivered
    /// a message, by ODS code: one statement.
    Feeds,
}

/// What an [`IngestOp`] or [`IngestQuery`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestReply {
    Done,
    Id(i64),
    Systems(Vec<Hl7System>),
    Message(Option<MessageRecord>),
    DeadLetters(Vec<DeadLetter>),
    Reviews(Vec<ReviewItem>),
    Merges(Vec<MergeRecord>),
    Feeds(Vec<FeedStatus>),
    Keys(Vec<ResourceKey>),
    /// Resources found by identifier, each with the `(system, value)` that found it.
    Identified(Vec<(ResourceKey, String, String)>),
    /// Message log rows, in no particular order.
    Messages(Vec<MessageRecord>),
}

/// The type of a column a backend decodes for [`SqlExec::cells`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
    Bytes,
    /// A boolean column (SQLite 0/1, PostgreSQL `BOOLEAN`), decoded as [`Cell::Int`] 0 or 1.
    Bool,
}

/// One decoded, nullable column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

fn text(s: &str) -> Arg {
    Arg::Text(s.to_owned())
}

fn opt(s: Option<&str>) -> Arg {
    s.map_or(Arg::Null, text)
}

fn st(sql: &str, args: Vec<Arg>) -> Statement {
    Statement {
        sql: sql.to_owned(),
        args,
    }
}

/// Runs a change inside a transaction's connection.
pub async fn run(exec: &mut dyn SqlExec, op: IngestOp) -> Result<IngestReply, StoreError> {
    match op {
        IngestOp::PutSystem(s) => {
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
        IngestOp::Message { sender, control_id } => message(exec, &sender, &control_id).await,
        IngestOp::Messages { keys } => messages(exec, &keys).await,
        IngestOp::PutMessages(ms) => {
            put_messages(exec, ms).await?;
            Ok(IngestReply::Done)
        }
        IngestOp::PutMessage(m) => {
            exec.execute(&st(
                "INSERT INTO hl7_messages (sender, control_id, received_at, ack_code, ack, patient_id) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
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
        IngestOp::ReplaceMessage(m) => {
            exec.execute(&st(
                "INSERT INTO hl7_messages (sender, control_id, received_at, ack_code, ack, patient_id) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (sender, control_id) DO UPDATE SET received_at = excluded.received_at, \
                 ack_code = excluded.ack_code, ack = excluded.ack, patient_id = excluded.patient_id",
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
        IngestOp::PutDeadLetter {
            received_at,
            sender,
            control_id,
            reason,
            raw,
        } => {
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
        IngestOp::ReplayedDeadLetter { id, at, failure } => {
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
        IngestOp::PutReview {
            created_at,
            source_ods,
            patient_id,
            candidate_id,
            score,
            reasons,
        } => {
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
        IngestOp::Review { id } => reviews(exec, ReviewFilter::Id(id)).await,
        IngestOp::DecideReview {
            id,
            status,
            by,
            at,
            merge_id,
        } => {
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
        IngestOp::PutMerge {
            at,
            survivor_id,
            merged_id,
            cause,
            actor,
            moved,
        } => {
            let moved =
                serde_json::to_string(&moved).map_err(|e| StoreError::Backend(e.to_string()))?;
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
        IngestOp::Merge { id } => merges(exec, MergeFilter::Id(id)).await,
        IngestOp::Compartment { patient_id } => {
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
        IngestOp::Identified { keys } => identified(exec, &keys).await,
        IngestOp::UndoMerge { id, at } => {
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
    }
}

/// Runs a read over a pooled connection.
pub async fn query(exec: &mut dyn SqlExec, q: IngestQuery) -> Result<IngestReply, StoreError> {
    match q {
        IngestQuery::Systems => {
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
        IngestQuery::Message { sender, control_id } => message(exec, &sender, &control_id).await,
        IngestQuery::Feeds => feed_status(exec).await,
        IngestQuery::DeadLetters {
            status,
            after_id,
            limit,
        } => {
            dead_letters(
                exec,
                LetterFilter::Page {
                    status,
                    after_id,
                    limit,
                },
            )
            .await
        }
        IngestQuery::DeadLetter { id } => dead_letters(exec, LetterFilter::Id(id)).await,
        IngestQuery::Reviews {
            status,
            after_id,
            limit,
        } => {
            reviews(
                exec,
                ReviewFilter::Page {
                    status,
                    after_id,
                    limit,
                },
            )
            .await
        }
        IngestQuery::Review { id } => reviews(exec, ReviewFilter::Id(id)).await,
        IngestQuery::Merges { patient_id } => merges(exec, MergeFilter::Patient(patient_id)).await,
    }
}

fn returned_id(rows: Vec<Vec<Cell>>) -> Result<IngestReply, StoreError> {
    match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
        Some(Cell::Int(id)) => Ok(IngestReply::Id(id)),
        _ => Err(StoreError::Backend("the insert returned no id".to_owned())),
    }
}

async fn message(
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

async fn messages(
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

async fn put_messages(exec: &mut dyn SqlExec, ms: Vec<MessageRecord>) -> Result<(), StoreError> {
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

enum LetterFilter {
    Id(i64),
    Page {
        status: Option<DeadLetterStatus>,
        after_id: i64,
        limit: u32,
    },
}

async fn dead_letters(exec: &mut dyn SqlExec, f: LetterFilter) -> Result<IngestReply, StoreError> {
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
            let p = s.bind(Arg::Int(i64::from(limit)));
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

enum ReviewFilter {
    Id(i64),
    Page {
        status: Option<ReviewStatus>,
        after_id: i64,
        limit: u32,
    },
}

async fn reviews(exec: &mut dyn SqlExec, f: ReviewFilter) -> Result<IngestReply, StoreError> {
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
            let p = s.bind(Arg::Int(i64::from(limit)));
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

enum MergeFilter {
    Id(i64),
    Patient(String),
}

async fn merges(exec: &mut dyn SqlExec, f: MergeFilter) -> Result<IngestReply, StoreError> {
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

async fn feed_status(exec: &mut dyn SqlExec) -> Result<IngestReply, StoreError> {
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

/// Reads a decoded row's columns in order.
/// Reads one row's cells in order (also for [`crate::break_glass`]).
pub(crate) struct Cols(pub(crate) std::vec::IntoIter<Cell>);

fn unexpected(what: &str) -> StoreError {
    StoreError::Backend(format!("unexpected column value: expected {what}"))
}

impl Cols {
    fn next(&mut self) -> Cell {
        self.0.next().unwrap_or(Cell::Null)
    }
    pub(crate) fn text(&mut self) -> Result<String, StoreError> {
        self.opt_text()?.ok_or_else(|| unexpected("text"))
    }
    pub(crate) fn opt_text(&mut self) -> Result<Option<String>, StoreError> {
        match self.next() {
            Cell::Text(s) => Ok(Some(s)),
            Cell::Null => Ok(None),
            _ => Err(unexpected("text")),
        }
    }
    pub(crate) fn int(&mut self) -> Result<i64, StoreError> {
        self.opt_int()?.ok_or_else(|| unexpected("an integer"))
    }
    pub(crate) fn opt_int(&mut self) -> Result<Option<i64>, StoreError> {
        match self.next() {
            Cell::Int(i) => Ok(Some(i)),
            Cell::Null => Ok(None),
            _ => Err(unexpected("an integer")),
        }
    }
    /// A [`Kind::Bool`] column.
    pub(crate) fn bool(&mut self) -> Result<bool, StoreError> {
        Ok(self.int()? != 0)
    }
    fn bytes(&mut self) -> Result<Vec<u8>, StoreError> {
        match self.next() {
            Cell::Bytes(b) => Ok(b),
            _ => Err(unexpected("bytes")),
        }
    }
}

// Typed helpers over the two entry points, so callers never match on replies.

fn wrong_reply() -> StoreError {
    StoreError::Backend("the store answered an ingest request with the wrong reply".to_owned())
}

use crate::traits::{ResourceStore, StoreTx};

pub async fn systems(store: &dyn ResourceStore) -> Result<Vec<Hl7System>, StoreError> {
    match store.ingest_read(IngestQuery::Systems).await? {
        IngestReply::Systems(v) => Ok(v),
        _ => Err(wrong_reply()),
    }
}

/// When each organisation's HL7 v2 feed last delivered a message (see [`FeedStatus`]).
pub async fn feeds(store: &dyn ResourceStore) -> Result<Vec<FeedStatus>, StoreError> {
    match store.ingest_read(IngestQuery::Feeds).await? {
        IngestReply::Feeds(v) => Ok(v),
        _ => Err(wrong_reply()),
    }
}

pub async fn logged_message(
    store: &dyn ResourceStore,
    sender: &str,
    control_id: &str,
) -> Result<Option<MessageRecord>, StoreError> {
    match store
        .ingest_read(IngestQuery::Message {
            sender: sender.to_owned(),
            control_id: control_id.to_owned(),
        })
        .await?
    {
        IngestReply::Message(m) => Ok(m),
        _ => Err(wrong_reply()),
    }
}

pub async fn list_dead_letters(
    store: &dyn ResourceStore,
    status: Option<DeadLetterStatus>,
    after_id: i64,
    limit: u32,
) -> Result<Vec<DeadLetter>, StoreError> {
    match store
        .ingest_read(IngestQuery::DeadLetters {
            status,
            after_id,
            limit,
        })
        .await?
    {
        IngestReply::DeadLetters(v) => Ok(v),
        _ => Err(wrong_reply()),
    }
}

pub async fn dead_letter(store: &dyn ResourceStore, id: i64) -> Result<DeadLetter, StoreError> {
    match store.ingest_read(IngestQuery::DeadLetter { id }).await? {
        IngestReply::DeadLetters(v) => v.into_iter().next().ok_or(StoreError::NotFound),
        _ => Err(wrong_reply()),
    }
}

pub async fn list_reviews(
    store: &dyn ResourceStore,
    status: Option<ReviewStatus>,
    after_id: i64,
    limit: u32,
) -> Result<Vec<ReviewItem>, StoreError> {
    match store
        .ingest_read(IngestQuery::Reviews {
            status,
            after_id,
            limit,
        })
        .await?
    {
        IngestReply::Reviews(v) => Ok(v),
        _ => Err(wrong_reply()),
    }
}

pub async fn review(store: &dyn ResourceStore, id: i64) -> Result<ReviewItem, StoreError> {
    match store.ingest_read(IngestQuery::Review { id }).await? {
        IngestReply::Reviews(v) => v.into_iter().next().ok_or(StoreError::NotFound),
        _ => Err(wrong_reply()),
    }
}

pub async fn merges_of(
    store: &dyn ResourceStore,
    patient_id: &str,
) -> Result<Vec<MergeRecord>, StoreError> {
    match store
        .ingest_read(IngestQuery::Merges {
            patient_id: patient_id.to_owned(),
        })
        .await?
    {
        IngestReply::Merges(v) => Ok(v),
        _ => Err(wrong_reply()),
    }
}

/// [`StoreTx::ingest`] expecting an id back.
pub async fn tx_id(tx: &mut dyn StoreTx, op: IngestOp) -> Result<i64, StoreError> {
    match tx.ingest(op).await? {
        IngestReply::Id(id) => Ok(id),
        _ => Err(wrong_reply()),
    }
}

/// [`StoreTx::ingest`] expecting nothing back.
pub async fn tx_do(tx: &mut dyn StoreTx, op: IngestOp) -> Result<(), StoreError> {
    match tx.ingest(op).await? {
        IngestReply::Done => Ok(()),
        _ => Err(wrong_reply()),
    }
}

pub async fn tx_message(
    tx: &mut dyn StoreTx,
    sender: &str,
    control_id: &str,
) -> Result<Option<MessageRecord>, StoreError> {
    match tx
        .ingest(IngestOp::Message {
            sender: sender.to_owned(),
            control_id: control_id.to_owned(),
        })
        .await?
    {
        IngestReply::Message(m) => Ok(m),
        _ => Err(wrong_reply()),
    }
}

pub async fn tx_review(tx: &mut dyn StoreTx, id: i64) -> Result<ReviewItem, StoreError> {
    match tx.ingest(IngestOp::Review { id }).await? {
        IngestReply::Reviews(v) => v.into_iter().next().ok_or(StoreError::NotFound),
        _ => Err(wrong_reply()),
    }
}

/// Keys per statement in [`IngestOp::Identified`]: four arguments each, well under
/// SQLite's and PostgreSQL's limits on bound parameters.
const IDENTIFIED_CHUNK: usize = 100;

/// [`IngestOp::Identified`] over a connection: the rows as the database has them (a
/// transaction lays what it holds back over them).
pub async fn tx_identified_rows(
    exec: &mut dyn SqlExec,
    keys: &[(ResourceType, String, String)],
) -> Result<Vec<(ResourceKey, String, String)>, StoreError> {
    match identified(exec, keys).await? {
        IngestReply::Identified(v) => Ok(v),
        _ => Err(wrong_reply()),
    }
}

/// [`IngestOp::Messages`]: the log rows of those of `keys` (sender, control id) processed
/// before.
pub async fn tx_messages(
    tx: &mut dyn StoreTx,
    keys: Vec<(String, String)>,
) -> Result<Vec<MessageRecord>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    match tx.ingest(IngestOp::Messages { keys }).await? {
        IngestReply::Messages(v) => Ok(v),
        _ => Err(wrong_reply()),
    }
}

/// One `UNION ALL` arm per key rather than an OR-list: each arm is a seek on
/// `search_token_value` (type, param, code, system), which SQLite does not do for OR terms.
async fn identified(
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

/// [`IngestOp::Identified`]: the resources carrying each `(type, system, value)`.
pub async fn tx_identified(
    tx: &mut dyn StoreTx,
    keys: Vec<(ResourceType, String, String)>,
) -> Result<Vec<(ResourceKey, String, String)>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    match tx.ingest(IngestOp::Identified { keys }).await? {
        IngestReply::Identified(v) => Ok(v),
        _ => Err(wrong_reply()),
    }
}

pub async fn tx_compartment(
    tx: &mut dyn StoreTx,
    patient_id: &str,
) -> Result<Vec<ResourceKey>, StoreError> {
    match tx
        .ingest(IngestOp::Compartment {
            patient_id: patient_id.to_owned(),
        })
        .await?
    {
        IngestReply::Keys(v) => Ok(v),
        _ => Err(wrong_reply()),
    }
}

pub async fn tx_merge(tx: &mut dyn StoreTx, id: i64) -> Result<MergeRecord, StoreError> {
    match tx.ingest(IngestOp::Merge { id }).await? {
        IngestReply::Merges(v) => v.into_iter().next().ok_or(StoreError::NotFound),
        _ => Err(wrong_reply()),
    }
}

/// Who decides on the identity review queue, for the audit entry committed with the decision.
#[derive(Debug, Clone)]
pub struct Decider {
    pub agent: crate::AuditAgent,
    pub channel: crate::Channel,
    pub client_address: Option<String>,
    pub request_id: Option<String>,
}

/// What a decision wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decided {
    /// The merge a link made (the id to undo it with).
    pub merge_id: Option<i64>,
    /// Versions written, as `Type/id/_history/version`.
    pub written: Vec<String>,
}

/// Why a decision was not made.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    /// No such open review item, or no such merge.
    #[error("{0}")]
    NotFound(String),
    /// It cannot be done as asked (e.g. a merge undone already); names why.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Decisions on the identity review queue. Merging is `carerecord-ingest`'s, which implements
/// this; the server, which may not depend on ingest, calls it, and the binary wires the two.
/// Each decision is one transaction with its audit entry.
#[async_trait::async_trait]
pub trait MatchDecisions: Send + Sync {
    /// The same person: review item `id`'s new record is merged into its candidate.
    async fn link(&self, id: i64, who: &Decider) -> Result<Decided, DecisionError>;
    /// Different people: both records stay.
    async fn reject(&self, id: i64, who: &Decider) -> Result<Decided, DecisionError>;
    /// Undoes merge `merge_id` (a linked item or an HL7 A40).
    async fn unmerge(&self, merge_id: i64, who: &Decider) -> Result<Decided, DecisionError>;
}
