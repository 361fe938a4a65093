//! From the bytes of one HL7 v2 message to its acknowledgement.
//!
//! Parsing, the sender check and mapping run on the caller's task (one per connection, so
//! they use every core). What touches the database goes to one writer task, which takes every
//! message waiting and processes them in one transaction (group commit), each with its
//! message-log row and audit entry. The batch is first written as one write set, without
//! savepoints; if a message is refused after writing, that attempt is rolled back and the batch
//! runs again with each message under its own savepoint, so the refused message is rolled back
//! alone and kept as a dead letter. Every waiter is answered only after the
//! commit, so an ACK always means "durably stored"; if the commit fails, every message of the
//! batch is answered AR and nothing of it was stored, so the sender's resend is right.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use carerecord_hl7::map::{MapContext, Mapped};
use carerecord_hl7::{AckCode, AckError, Header, ack, nack_unparsed};
use carerecord_store::group_commit::next_group;
use carerecord_store::ingest::{self, DeadLetterStatus, Hl7System, IngestOp, MessageRecord};
use carerecord_store::{
    AuditAction, AuditAgent, AuditOutcome, AuditRecord, Channel, PrincipalKind, ResourceStore,
    StoreError, StoreTx, now_micros,
};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::IngestError;
use crate::apply::{Applied, apply};

/// Messages taken into one transaction at the most.
pub const MAX_BATCH: usize = 256;

/// The answer to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: AckCode,
    /// The ACK, without MLLP framing.
    pub ack: Vec<u8>,
    /// Set when the message was kept as a dead letter.
    pub dead_letter: Option<i64>,
}

/// Where a message comes from: the wire, or a dead letter being replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Wire,
    Replay(i64),
}

enum Work {
    /// A mapped message to store.
    Message {
        sender: Hl7System,
        header: Box<Header>,
        mapped: Box<Mapped>,
        raw: Vec<u8>,
        received_at: i64,
    },
    /// A message refused before it reached the store: keep it, then answer `reply`.
    DeadLetter {
        sender: Option<String>,
        control_id: Option<String>,
        reason: String,
        raw: Vec<u8>,
        received_at: i64,
        reply: Reply,
        /// `sender` is a registered system's id and `control_id` its MSH-10: the outcome is
        /// logged like any processed message's, so a resend is answered with the same ACK.
        log: bool,
    },
}

struct Job {
    work: Work,
    origin: Origin,
    done: oneshot::Sender<Result<Reply, IngestError>>,
}

/// The gathering pipeline for HL7 v2. Cheap to share (`Arc`).
pub struct Pipeline {
    store: Arc<dyn ResourceStore>,
    systems: RwLock<HashMap<(String, String), Hl7System>>,
    jobs: mpsc::Sender<Job>,
}

fn hl7_now() -> String {
    let t = OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}+0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A fresh control id for an ACK (MSH-10 is at most 20 characters in v2.4).
fn ack_id() -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!("CR{}", u.get(..18).unwrap_or(&u))
}

fn error_at(segment: &str, field: u32, code: &str, text: &str) -> AckError {
    AckError {
        segment: segment.to_owned(),
        sequence: Some(1),
        field: Some(field),
        component: None,
        code: code.to_owned(),
        severity: 'E',
        text: text.to_owned(),
    }
}

impl Pipeline {
    /// Starts the pipeline's writer task on the current runtime.
    pub fn start(store: Arc<dyn ResourceStore>) -> Arc<Pipeline> {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let pipeline = Arc::new(Pipeline {
            store: store.clone(),
            systems: RwLock::new(HashMap::new()),
            jobs: tx,
        });
        tokio::spawn(writer(store, rx));
        pipeline
    }

    pub fn store(&self) -> &Arc<dyn ResourceStore> {
        &self.store
    }

    /// The registered system sending as `application`/`facility`, re-reading the registry
    /// when it is not known yet (a system added while running).
    async fn sender(
        &self,
        application: &str,
        facility: &str,
    ) -> Result<Option<Hl7System>, IngestError> {
        let key = (application.to_owned(), facility.to_owned());
        if let Ok(known) = self.systems.read()
            && let Some(s) = known.get(&key)
        {
            return Ok(Some(s.clone()));
        }
        let all = ingest::systems(self.store.as_ref()).await?;
        let mut map = HashMap::new();
        for s in all {
            map.insert((s.msh_application.clone(), s.msh_facility.clone()), s);
        }
        let found = map.get(&key).cloned();
        if let Ok(mut known) = self.systems.write() {
            *known = map;
        }
        Ok(found)
    }

    /// Processes one message (without MLLP framing) and answers its acknowledgement, once
    /// what it carries is durably stored. When the store cannot take it the answer is AR
    /// naming an internal error: nothing was stored, and the sender should resend.
    pub async fn handle(&self, raw: &[u8]) -> Reply {
        match self.process(raw, Origin::Wire).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "an HL7 message could not be stored");
                let err = error_at("MSH", 10, "207", "the record store is unavailable; resend");
                let ack = match carerecord_hl7::parse(raw) {
                    Ok(m) => ack(m.header(), AckCode::AR, &[err], &ack_id(), &hl7_now()),
                    Err(pe) => nack_unparsed(&pe, &ack_id(), &hl7_now()),
                };
                Reply {
                    code: AckCode::AR,
                    ack,
                    dead_letter: None,
                }
            }
        }
    }

    /// Re-processes dead letter `id`; answers the new outcome (an AA resolves it).
    pub async fn replay(&self, id: i64) -> Result<Reply, IngestError> {
        let d = ingest::dead_letter(self.store.as_ref(), id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => {
                    IngestError::NotFound(format!("dead letter {id} does not exist"))
                }
                e => e.into(),
            })?;
        if d.status != DeadLetterStatus::Open {
            return Err(IngestError::Invalid(format!(
                "dead letter {id} was replayed already"
            )));
        }
        self.process(&d.raw, Origin::Replay(id)).await
    }

    async fn submit(&self, work: Work, origin: Origin) -> Result<Reply, IngestError> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job { work, origin, done })
            .await
            .map_err(|_| IngestError::Internal("the ingest writer has stopped".into()))?;
        wait.await
            .map_err(|_| IngestError::Internal("the ingest writer has stopped".into()))?
    }

    async fn process(&self, raw: &[u8], origin: Origin) -> Result<Reply, IngestError> {
        let received_at = now_micros();
        let message = match carerecord_hl7::parse(raw) {
            Ok(m) => m,
            Err(e) => {
                let ack = nack_unparsed(&e, &ack_id(), &hl7_now());
                let hint = &e.hint;
                let reply = Reply {
                    code: AckCode::AR,
                    ack,
                    dead_letter: None,
                };
                let sender = format!("{}^{}", hint.sending_application, hint.sending_facility);
                return self
                    .submit(
                        Work::DeadLetter {
                            sender: Some(sender),
                            control_id: (!hint.control_id.is_empty())
                                .then(|| hint.control_id.clone()),
                            reason: format!("unparseable: {}", e.kind),
                            raw: raw.to_vec(),
                            received_at,
                            reply,
                            log: false,
                        },
                        origin,
                    )
                    .await;
            }
        };
        let header = message.header().clone();
        let Some(sender) = self
            .sender(&header.sending_application, &header.sending_facility)
            .await?
        else {
            // Not from a registered system: refused, and not kept (anybody can connect).
            let err = error_at(
                "MSH",
                4,
                "204",
                "unknown sender: MSH-3/MSH-4 is not a registered sending system",
            );
            return Ok(Reply {
                code: AckCode::AR,
                ack: ack(&header, AckCode::AR, &[err], &ack_id(), &hl7_now()),
                dead_letter: None,
            });
        };
        if origin == Origin::Wire
            && let Some(logged) =
                ingest::logged_message(self.store.as_ref(), &sender.id, &header.control_id).await?
        {
            return Ok(resent(&logged));
        }
        let ctx = MapContext {
            sender_ods: sender.ods.clone(),
            sender_system: sender.name.clone(),
            received_at: OffsetDateTime::now_utc(),
            message_id: header.control_id.clone(),
        };
        match carerecord_hl7::map::map(&message, &ctx) {
            Ok(mapped) => {
                self.submit(
                    Work::Message {
                        sender,
                        header: Box::new(header),
                        mapped: Box::new(mapped),
                        raw: raw.to_vec(),
                        received_at,
                    },
                    origin,
                )
                .await
            }
            Err(e) => {
                let code = e.ack_code();
                let reply = Reply {
                    code,
                    ack: ack(&header, code, &[e.to_ack_error()], &ack_id(), &hl7_now()),
                    dead_letter: None,
                };
                self.submit(
                    Work::DeadLetter {
                        sender: Some(sender.id.clone()),
                        control_id: Some(header.control_id.clone()),
                        reason: e.to_string(),
                        raw: raw.to_vec(),
                        received_at,
                        reply,
                        log: true,
                    },
                    origin,
                )
                .await
            }
        }
    }
}

fn resent(logged: &MessageRecord) -> Reply {
    let code = match logged.ack_code.as_str() {
        "AE" => AckCode::AE,
        "AR" => AckCode::AR,
        _ => AckCode::AA,
    };
    Reply {
        code,
        ack: logged.ack.clone(),
        dead_letter: None,
    }
}

async fn writer(store: Arc<dyn ResourceStore>, mut rx: mpsc::Receiver<Job>) {
    while let Some(batch) = next_group(&mut rx, MAX_BATCH, |_| 1).await {
        let outcome = run_batch(store.as_ref(), &batch).await;
        match outcome {
            Ok(replies) => {
                for (job, reply) in batch.into_iter().zip(replies) {
                    let _ = job.done.send(Ok(reply));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, messages = batch.len(), "an HL7 batch could not be stored; every message in it is refused");
                for job in batch {
                    let _ = job.done.send(Err(IngestError::Store(StoreError::Busy)));
                }
            }
        }
    }
}

fn agent(sender: &Hl7System) -> AuditAgent {
    AuditAgent {
        kind: PrincipalKind::System,
        id: sender.id.clone(),
        name: Some(sender.name.clone()),
        role: None,
        organisation_id: Some(sender.org_id.clone()),
        ods_code: Some(sender.ods.clone()),
    }
}

/// Whether an error is the store's (the batch cannot go on) or the message's (refuse it alone).
fn is_store_failure(e: &IngestError) -> bool {
    matches!(
        e,
        IngestError::Store(StoreError::Busy | StoreError::Backend(_)) | IngestError::Internal(_)
    )
}

async fn dead_letter(
    tx: &mut dyn StoreTx,
    origin: Origin,
    sender: Option<String>,
    control_id: Option<String>,
    reason: String,
    raw: Vec<u8>,
    received_at: i64,
) -> Result<Option<i64>, StoreError> {
    match origin {
        Origin::Wire => Ok(Some(
            ingest::tx_id(
                tx,
                IngestOp::PutDeadLetter {
                    received_at,
                    sender,
                    control_id,
                    reason,
                    raw,
                },
            )
            .await?,
        )),
        Origin::Replay(id) => {
            ingest::tx_do(
                tx,
                IngestOp::ReplayedDeadLetter {
                    id,
                    at: now_micros(),
                    failure: Some(reason),
                },
            )
            .await?;
            Ok(Some(id))
        }
    }
}

/// Logs the failed outcome of a message from a registered sender (a dead letter), replacing
/// what an earlier attempt logged when this is a replay.
async fn log_failure(
    tx: &mut dyn StoreTx,
    sender: &str,
    control_id: &str,
    received_at: i64,
    reply: &Reply,
) -> Result<(), StoreError> {
    ingest::tx_do(
        tx,
        IngestOp::ReplaceMessage(MessageRecord {
            sender: sender.to_owned(),
            control_id: control_id.to_owned(),
            received_at,
            ack_code: reply.code.as_str().to_owned(),
            ack: reply.ack.clone(),
            patient_id: None,
        }),
    )
    .await
}

/// How a batch is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// No savepoints: the whole batch is written together (its index rows as one set of
    /// multi-row statements). If a message is refused midway, the attempt is abandoned.
    Optimistic,
    /// Each message under its own savepoint, so that a refused one is rolled back alone.
    Savepoints,
}

/// Why an attempt at a batch ended without committing.
enum Abandoned {
    /// A message was refused: run the batch again with savepoints.
    Isolate,
    /// The store failed: every message of the batch is refused.
    Failed(IngestError),
}

impl From<IngestError> for Abandoned {
    fn from(e: IngestError) -> Self {
        Abandoned::Failed(e)
    }
}

impl From<StoreError> for Abandoned {
    fn from(e: StoreError) -> Self {
        Abandoned::Failed(e.into())
    }
}

/// Stores a batch in one transaction. Almost every message is accepted, so the batch is first
/// written without savepoints — a savepoint per message costs a journal copy of every page the
/// message touches and writes its rows alone; only if a message is refused midway is the
/// attempt rolled back and the batch run again with one savepoint per message, which keeps the
/// refused one out and the others in.
async fn run_batch(store: &dyn ResourceStore, batch: &[Job]) -> Result<Vec<Reply>, IngestError> {
    match run_batch_with(store, batch, Isolation::Optimistic).await {
        Ok(r) => Ok(r),
        Err(Abandoned::Failed(e)) => Err(e),
        Err(Abandoned::Isolate) => {
            match run_batch_with(store, batch, Isolation::Savepoints).await {
                Ok(r) => Ok(r),
                Err(Abandoned::Failed(e)) => Err(e),
                Err(Abandoned::Isolate) => Err(IngestError::Internal(
                    "a refused message was not isolated".into(),
                )),
            }
        }
    }
}

async fn run_batch_with(
    store: &dyn ResourceStore,
    batch: &[Job],
    isolation: Isolation,
) -> Result<Vec<Reply>, Abandoned> {
    let mut tx = store.begin().await?;
    // The messages of the batch processed before, in one look-up; then those accepted in this
    // batch (a resend inside the batch), which are logged together at the end.
    let keys: Vec<(String, String)> = batch
        .iter()
        .filter_map(|j| match &j.work {
            Work::Message { sender, header, .. } => {
                Some((sender.id.clone(), header.control_id.clone()))
            }
            Work::DeadLetter {
                sender: Some(s),
                control_id: Some(c),
                log: true,
                ..
            } => Some((s.clone(), c.clone())),
            Work::DeadLetter { .. } => None,
        })
        .collect();
    let mut logged: HashMap<(String, String), Reply> = HashMap::new();
    for m in ingest::tx_messages(tx.as_mut(), keys).await? {
        logged.insert((m.sender.clone(), m.control_id.clone()), resent(&m));
    }
    let mut log: Vec<MessageRecord> = Vec::new();
    let mut replies = Vec::with_capacity(batch.len());
    for job in batch {
        match &job.work {
            Work::DeadLetter {
                sender,
                control_id,
                reason,
                raw,
                received_at,
                reply,
                log,
            } => {
                let logged_as = match (log, sender, control_id) {
                    (true, Some(s), Some(c)) => Some((s.clone(), c.clone())),
                    _ => None,
                };
                // Processed already (a resend, perhaps in this very batch): the same ACK again.
                if job.origin == Origin::Wire
                    && let Some(prior) = logged_as.as_ref().and_then(|k| logged.get(k))
                {
                    replies.push(prior.clone());
                    continue;
                }
                let id = dead_letter(
                    tx.as_mut(),
                    job.origin,
                    sender.clone(),
                    control_id.clone(),
                    reason.clone(),
                    raw.clone(),
                    *received_at,
                )
                .await?;
                if let Some((s, c)) = logged_as {
                    log_failure(tx.as_mut(), &s, &c, *received_at, reply).await?;
                    logged.insert((s, c), reply.clone());
                }
                let mut r = reply.clone();
                r.dead_letter = id;
                replies.push(r);
            }
            Work::Message {
                sender,
                header,
                mapped,
                raw,
                received_at,
            } => {
                let key = (sender.id.clone(), header.control_id.clone());
                // A dead letter replayed after a fix is applied again even though its failure
                // was logged; on success its log row is replaced.
                let retry = matches!(job.origin, Origin::Replay(_))
                    && logged.get(&key).is_some_and(|l| l.code != AckCode::AA);
                // Processed already (a resend, perhaps in this very batch): the same ACK again.
                if let Some(reply) = logged.get(&key).filter(|_| !retry) {
                    if let Origin::Replay(id) = job.origin {
                        ingest::tx_do(
                            tx.as_mut(),
                            IngestOp::ReplayedDeadLetter {
                                id,
                                at: now_micros(),
                                failure: None,
                            },
                        )
                        .await?;
                    }
                    replies.push(reply.clone());
                    continue;
                }
                if isolation == Isolation::Savepoints {
                    tx.savepoint().await?;
                }
                let now = now_micros();
                match apply(tx.as_mut(), mapped, sender, now).await {
                    Ok(applied) => {
                        let (reply, record) = accepted(
                            tx.as_mut(),
                            job.origin,
                            sender,
                            header,
                            &applied,
                            *received_at,
                            now,
                        )
                        .await?;
                        if isolation == Isolation::Savepoints {
                            tx.release_savepoint().await?;
                        }
                        logged.insert(key, reply.clone());
                        if matches!(job.origin, Origin::Replay(_)) {
                            // Replaces the failure logged before, if any.
                            ingest::tx_do(tx.as_mut(), IngestOp::ReplaceMessage(record)).await?;
                        } else {
                            log.push(record);
                        }
                        replies.push(reply);
                    }
                    Err(e) if is_store_failure(&e) => return Err(Abandoned::Failed(e)),
                    Err(_) if isolation == Isolation::Optimistic => {
                        // Dropping the transaction rolls the attempt back.
                        return Err(Abandoned::Isolate);
                    }
                    Err(e) => {
                        tx.rollback_to_savepoint().await?;
                        let err = match &e {
                            IngestError::InvalidNhsNumber(_) => {
                                error_at("PID", 3, "102", &e.to_string())
                            }
                            _ => AckError {
                                segment: "MSH".into(),
                                sequence: Some(1),
                                field: None,
                                component: None,
                                code: "207".into(),
                                severity: 'E',
                                text: e.to_string(),
                            },
                        };
                        let id = dead_letter(
                            tx.as_mut(),
                            job.origin,
                            Some(sender.id.clone()),
                            Some(header.control_id.clone()),
                            e.to_string(),
                            raw.clone(),
                            *received_at,
                        )
                        .await?;
                        let reply = Reply {
                            code: AckCode::AE,
                            ack: ack(header, AckCode::AE, &[err], &ack_id(), &hl7_now()),
                            dead_letter: id,
                        };
                        log_failure(
                            tx.as_mut(),
                            &sender.id,
                            &header.control_id,
                            *received_at,
                            &reply,
                        )
                        .await?;
                        logged.insert(key, reply.clone());
                        replies.push(reply);
                    }
                }
            }
        }
    }
    if !log.is_empty() {
        ingest::tx_do(tx.as_mut(), IngestOp::PutMessages(log)).await?;
    }
    tx.commit().await?;
    Ok(replies)
}

async fn accepted(
    tx: &mut dyn StoreTx,
    origin: Origin,
    sender: &Hl7System,
    header: &Header,
    applied: &Applied,
    received_at: i64,
    now: i64,
) -> Result<(Reply, MessageRecord), IngestError> {
    let bytes = ack(header, AckCode::AA, &[], &ack_id(), &hl7_now());
    // Logged with the batch's other messages, in the same transaction.
    let record = MessageRecord {
        sender: sender.id.clone(),
        control_id: header.control_id.clone(),
        received_at,
        ack_code: AckCode::AA.as_str().to_owned(),
        ack: bytes.clone(),
        patient_id: Some(applied.patient_id.clone()),
    };
    if let Origin::Replay(id) = origin {
        ingest::tx_do(
            tx,
            IngestOp::ReplayedDeadLetter {
                id,
                at: now,
                failure: None,
            },
        )
        .await?;
    }
    let mut audit = AuditRecord::new(
        now,
        AuditAction::Transaction,
        AuditOutcome::Allowed,
        "hl7-feed",
        agent(sender),
        Channel::Hl7,
    );
    audit.patient_ids = vec![applied.patient_id.clone()];
    audit.resources = applied.written.clone();
    audit.request_id = Some(header.control_id.clone());
    tx.append_audit(vec![audit]).await?;
    Ok((
        Reply {
            code: AckCode::AA,
            ack: bytes,
            dead_letter: None,
        },
        record,
    ))
}
