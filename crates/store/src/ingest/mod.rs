//! The gathering tables (migration `0007_ingest.sql`): registered HL7 v2 senders, the log of
//! processed messages, dead letters, the identity-matching review queue and patient merges.
//!
//! None of it is FHIR, so it is not in the resource tables; but the message log and the review
//! queue must commit in the same transaction as the resources a message carries, so the writes
//! go through [`StoreTx::ingest`](crate::StoreTx::ingest) and the reads through
//! [`ResourceStore::ingest_read`](crate::ResourceStore::ingest_read). Each backend only hands
//! over a connection ([`SqlExec`]); the statements and the decoding are written once, here.
//! Every instant is microseconds since the Unix epoch.
//!
//! One module per table group: [`messages`] (senders, the message log, feed freshness),
//! [`letters`] (dead letters), [`reviews`] (the match review queue), [`merges`], and [`lookup`]
//! (the resource look-ups matching and merging need). [`calls`] has the typed entry points
//! callers use, [`decisions`] the trait through which the server decides on the review queue, [`people`] the
//! one through which it has the people in FHIR submissions matched.

use carerecord_fhir::ResourceType;

use crate::cells::Cell;
use crate::engine::SqlExec;
use crate::error::StoreError;
use crate::model::ResourceKey;
use crate::sql::{Arg, Statement};

mod calls;
mod decisions;
mod letters;
mod lookup;
mod merges;
mod messages;
mod model;
mod people;
mod reviews;

pub use calls::{
    dead_letter, feeds, list_dead_letters, list_reviews, logged_message, merges_of, review,
    systems, tx_compartment, tx_do, tx_id, tx_identified, tx_identified_rows, tx_merge, tx_message,
    tx_messages, tx_review,
};
pub use decisions::{Decided, Decider, DecisionError, MatchDecisions};
pub use model::{
    DeadLetter, DeadLetterStatus, FeedStatus, Hl7System, MergeRecord, MessageRecord, ReviewItem,
    ReviewStatus,
};
pub use people::{PersonFound, PersonMatch, PersonMatchError, PersonMatcher, Submitter};

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
        IngestOp::PutSystem(s) => messages::put_system(exec, s).await,
        IngestOp::Message { sender, control_id } => {
            messages::message(exec, &sender, &control_id).await
        }
        IngestOp::Messages { keys } => messages::messages(exec, &keys).await,
        IngestOp::PutMessages(ms) => {
            messages::put_messages(exec, ms).await?;
            Ok(IngestReply::Done)
        }
        IngestOp::PutMessage(m) => messages::put_message(exec, m, false).await,
        IngestOp::ReplaceMessage(m) => messages::put_message(exec, m, true).await,
        IngestOp::PutDeadLetter {
            received_at,
            sender,
            control_id,
            reason,
            raw,
        } => letters::put(exec, received_at, sender, control_id, reason, raw).await,
        IngestOp::ReplayedDeadLetter { id, at, failure } => {
            letters::replayed(exec, id, at, failure).await
        }
        IngestOp::PutReview {
            created_at,
            source_ods,
            patient_id,
            candidate_id,
            score,
            reasons,
        } => {
            reviews::put(
                exec,
                created_at,
                source_ods,
                patient_id,
                candidate_id,
                score,
                reasons,
            )
            .await
        }
        IngestOp::Review { id } => reviews::reviews(exec, reviews::ReviewFilter::Id(id)).await,
        IngestOp::DecideReview {
            id,
            status,
            by,
            at,
            merge_id,
        } => reviews::decide(exec, id, status, by, at, merge_id).await,
        IngestOp::PutMerge {
            at,
            survivor_id,
            merged_id,
            cause,
            actor,
            moved,
        } => merges::put(exec, at, survivor_id, merged_id, cause, actor, moved).await,
        IngestOp::Merge { id } => merges::merges(exec, merges::MergeFilter::Id(id)).await,
        IngestOp::UndoMerge { id, at } => merges::undo(exec, id, at).await,
        IngestOp::Compartment { patient_id } => lookup::compartment(exec, patient_id).await,
        IngestOp::Identified { keys } => lookup::identified(exec, &keys).await,
    }
}

/// Runs a read over a pooled connection.
pub async fn query(exec: &mut dyn SqlExec, q: IngestQuery) -> Result<IngestReply, StoreError> {
    match q {
        IngestQuery::Systems => messages::systems(exec).await,
        IngestQuery::Message { sender, control_id } => {
            messages::message(exec, &sender, &control_id).await
        }
        IngestQuery::Feeds => messages::feed_status(exec).await,
        IngestQuery::DeadLetters {
            status,
            after_id,
            limit,
        } => {
            letters::dead_letters(
                exec,
                letters::LetterFilter::Page {
                    status,
                    after_id,
                    limit,
                },
            )
            .await
        }
        IngestQuery::DeadLetter { id } => {
            letters::dead_letters(exec, letters::LetterFilter::Id(id)).await
        }
        IngestQuery::Reviews {
            status,
            after_id,
            limit,
        } => {
            reviews::reviews(
                exec,
                reviews::ReviewFilter::Page {
                    status,
                    after_id,
                    limit,
                },
            )
            .await
        }
        IngestQuery::Review { id } => reviews::reviews(exec, reviews::ReviewFilter::Id(id)).await,
        IngestQuery::Merges { patient_id } => {
            merges::merges(exec, merges::MergeFilter::Patient(patient_id)).await
        }
    }
}

fn returned_id(rows: Vec<Vec<Cell>>) -> Result<IngestReply, StoreError> {
    match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
        Some(Cell::Int(id)) => Ok(IngestReply::Id(id)),
        _ => Err(StoreError::Backend("the insert returned no id".to_owned())),
    }
}
