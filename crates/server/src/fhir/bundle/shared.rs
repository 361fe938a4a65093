//! Transaction Bundles of concurrent requests written in one store transaction, on a store
//! with a single writer (SQLite).
//!
//! Each request prepares its Bundle on its own task — parsing, targets, references,
//! validation, index rows: most of the CPU work, on every core — and queues it. One writer task
//! takes every Bundle waiting and writes them in one store transaction with their audit
//! entries: one commit and one sync for all of them, and every page they have in common (the
//! tables' and indexes' upper levels) written to the log once instead of once per Bundle. A lone
//! request waits for nothing more than before; under load the groups grow by themselves.
//!
//! Each Bundle stays all-or-nothing and is answered only after the commit. The group is first
//! written without savepoints (a savepoint costs SQLite a journal copy of every page it touches);
//! if any Bundle is refused, that attempt is rolled back and the group written again with a
//! savepoint per Bundle, so the refused one is rolled back alone and the others commit. If the
//! commit fails, every Bundle of the group is answered with that error and nothing of it is
//! stored. A Bundle whose request stops waiting once it is queued (the client went away, a
//! timeout) is still written with its group — as a Bundle whose response was lost after its
//! commit would be; the client learns the outcome by reading. The order of the Bundles in the
//! transaction is the order they were queued: each sees what the ones before it wrote, as if
//! they had run one after another — which on a single-writer store is what they would have
//! done.

use std::sync::{Arc, OnceLock};

use carerecord_store::group_commit::next_group;
use carerecord_store::{AuditRecord, ResourceStore, StoreError, StoreTx};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::{
    BundleOptions, Entry, Method, Plan, transaction_response, write_entries,
    write_entries_isolated, write_records,
};
use crate::error::ApiError;

/// Bundles queued before a request waits for room.
const QUEUE: usize = 1_024;
/// Entries written in one group at the most (a group is one transaction: this bounds how long
/// the writer holds SQLite's write lock and how much a failed commit refuses).
const MAX_ENTRIES: usize = 5_000;

struct Job {
    entries: Vec<Entry>,
    plan: Option<Plan>,
    opts: BundleOptions,
    done: oneshot::Sender<Result<Value, ApiError>>,
}

/// The handle to the shared writer of transaction Bundles. Cheap to clone; the writer task
/// starts with the first Bundle (on the runtime serving it) and ends when the last handle is
/// dropped.
#[derive(Clone)]
pub struct SharedTransactions {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ResourceStore>,
    /// `false`: every transaction Bundle has a store transaction of its own.
    enabled: bool,
    queue: OnceLock<mpsc::Sender<Job>>,
}

impl SharedTransactions {
    /// Shares transactions when `store` has a single writer ([`ResourceStore::single_writer`]).
    pub fn for_store(store: &Arc<dyn ResourceStore>) -> SharedTransactions {
        SharedTransactions {
            inner: Arc::new(Inner {
                store: store.clone(),
                enabled: store.single_writer(),
                queue: OnceLock::new(),
            }),
        }
    }

    /// Whether a transaction of `entries` goes through the shared writer: a store with a single
    /// writer, and no reads in it (they are answered after the commit, on the request's task).
    pub(super) fn takes(&self, entries: &[Entry]) -> bool {
        self.inner.enabled && entries.iter().all(|e| e.method != Method::Get)
    }

    /// Writes a prepared transaction in the next group and answers its response Bundle once
    /// the group has committed.
    pub(super) async fn write(
        &self,
        entries: Vec<Entry>,
        plan: Option<Plan>,
        opts: BundleOptions,
    ) -> Result<Value, ApiError> {
        let queue = self.inner.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(writer(self.inner.store.clone(), rx));
            tx
        });
        let (done, wait) = oneshot::channel();
        queue
            .send(Job {
                entries,
                plan,
                opts,
                done,
            })
            .await
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }
}

fn stopped() -> ApiError {
    ApiError::Internal("the transaction writer has stopped".into())
}

async fn writer(store: Arc<dyn ResourceStore>, mut rx: mpsc::Receiver<Job>) {
    while let Some(mut group) = next_group(&mut rx, MAX_ENTRIES, |j| j.entries.len()).await {
        let outcomes = write_group(store.as_ref(), &mut group).await;
        for (job, outcome) in group.into_iter().zip(outcomes) {
            // A request that stopped waiting (its client went away) is no longer interested.
            let _ = job.done.send(outcome);
        }
    }
}

/// One outcome per job, in order.
type Outcomes = Vec<Result<Value, ApiError>>;

async fn write_group(store: &dyn ResourceStore, group: &mut [Job]) -> Outcomes {
    let written = match optimistic(store, group).await {
        Ok(Some(outcomes)) => Ok(outcomes),
        Ok(None) => isolated(store, group).await,
        Err(e) => Err(e),
    };
    match written {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::warn!(error = %e, bundles = group.len(), "a group of transaction Bundles could not be stored; every Bundle in it is refused");
            group.iter().map(|_| Err(for_each(&e))).collect()
        }
    }
}

/// The same error for each Bundle of a group that failed as a whole (`StoreError` holds no
/// cloneable source).
fn for_each(e: &StoreError) -> ApiError {
    match e {
        StoreError::Busy => ApiError::Busy,
        other => ApiError::Internal(other.to_string()),
    }
}

/// Writes the group without savepoints. `None` when a Bundle was refused: the transaction has
/// been rolled back, and the group must be written again, isolated.
async fn optimistic(
    store: &dyn ResourceStore,
    group: &mut [Job],
) -> Result<Option<Outcomes>, StoreError> {
    // Dropping `tx` on an early return rolls everything back, audit entries too.
    let mut tx = store.begin().await?;
    let mut responses = Vec::with_capacity(group.len());
    let mut audit = Vec::new();
    for job in group.iter_mut() {
        match write_entries(tx.as_mut(), &job.opts, &job.entries, job.plan.take()).await {
            Ok((results, notes)) => {
                audit.extend(write_records(&job.opts, &job.entries, &notes));
                responses.push(Ok(transaction_response(results)));
            }
            Err(_) => {
                // Dropped, the transaction rolls back before the connection is used again.
                drop(tx);
                return Ok(None);
            }
        }
    }
    finish(tx, audit).await?;
    Ok(Some(responses))
}

/// Writes the group with a savepoint per Bundle: a refused Bundle is rolled back alone and
/// answered with its error; the others commit. Targets are decided again inside the
/// transaction (the plans were spent), as for a transaction with conditions.
async fn isolated(store: &dyn ResourceStore, group: &mut [Job]) -> Result<Outcomes, StoreError> {
    let mut tx = store.begin().await?;
    let mut outcomes = Vec::with_capacity(group.len());
    let mut audit = Vec::new();
    for job in group.iter() {
        match write_entries_isolated(tx.as_mut(), &job.opts, &job.entries, None).await? {
            Ok((results, notes)) => {
                audit.extend(write_records(&job.opts, &job.entries, &notes));
                outcomes.push(Ok(transaction_response(results)));
            }
            Err(e) => outcomes.push(Err(e)),
        }
    }
    finish(tx, audit).await?;
    Ok(outcomes)
}

async fn finish(mut tx: Box<dyn StoreTx>, audit: Vec<AuditRecord>) -> Result<(), StoreError> {
    if !audit.is_empty() {
        tx.append_audit(audit).await?;
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use std::sync::Arc;

    use carerecord_access::Visibility;
    use carerecord_fhir::{LogicalId, ResourceType};
    use carerecord_search::query::Handling;
    use carerecord_store::{ResourceStore, StoreError};
    use serde_json::{Value, json};
    use tokio::sync::oneshot;

    use super::{Job, write_group};
    use crate::access::Access;
    use crate::fhir::PreferReturn;
    use crate::fhir::bundle::{BundleOptions, Prepared, prepare};

    fn options() -> BundleOptions {
        BundleOptions {
            base: "http://localhost/fhir".into(),
            prefer_return: PreferReturn::Minimal,
            handling: Handling::Strict,
            access: Access::service("shared-test"),
            audited: false,
            client_address: None,
            people: None,
            once: false,
        }
    }

    fn patient(id: &str) -> Value {
        json!({"resource": {"resourceType": "Patient", "id": id, "birthDate": "1940-02-03"},
               "request": {"method": "PUT", "url": format!("Patient/{id}")}})
    }

    fn job(entries: Vec<Value>) -> Job {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        let Ok(Prepared::Transaction { entries, plan }) = prepare(&bundle, &options()).0 else {
            panic!("not a transaction")
        };
        Job {
            entries,
            plan,
            opts: options(),
            done: oneshot::channel().0,
        }
    }

    async fn exists(store: &dyn ResourceStore, id: &str) -> bool {
        let id = LogicalId::parse(id).unwrap();
        match store
            .read(ResourceType::Patient, &id, &Visibility::All)
            .await
        {
            Ok(_) => true,
            Err(StoreError::NotFound) => false,
            Err(e) => panic!("{e}"),
        }
    }

    /// A Bundle refused after it wrote part of itself leaves nothing, and the Bundles it shared
    /// the transaction with — before and after it — are stored.
    #[tokio::test]
    async fn a_refused_bundle_leaves_nothing_and_its_group_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ResourceStore> = Arc::new(
            carerecord_store_sqlite::SqliteStore::open(&dir.path().join("t.db"))
                .await
                .unwrap(),
        );
        let refused = vec![
            patient("b"),
            // Updating a version of a resource that does not exist: refused at its turn.
            json!({"resource": {"resourceType": "Patient", "id": "b2"},
                   "request": {"method": "PUT", "url": "Patient/b2", "ifMatch": "W/\"3\""}}),
        ];
        let mut group = vec![
            job(vec![patient("a1"), patient("a2")]),
            job(refused),
            job(vec![patient("c")]),
        ];
        let outcomes = write_group(store.as_ref(), &mut group).await;
        assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
        assert!(
            outcomes[1].is_err(),
            "the refused Bundle was answered {:?}",
            outcomes[1]
        );
        assert!(outcomes[2].is_ok(), "{:?}", outcomes[2]);
        for id in ["a1", "a2", "c"] {
            assert!(exists(store.as_ref(), id).await, "Patient/{id} was lost");
        }
        assert!(
            !exists(store.as_ref(), "b").await,
            "the refused Bundle's first entry was kept"
        );
    }
}
