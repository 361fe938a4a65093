//! Group commit for audit entries of reads.
//!
//! A read's response must not be sent before its audit entry is durable, but a transaction and
//! an fsync per read would make every read cost a write. Instead each store runs one writer
//! task: callers queue their records with a oneshot to be told the outcome; the writer takes
//! everything queued, writes it in ONE transaction (one fsync, one chain lock), and then answers
//! every waiter. Under load the batches grow by themselves; alone, a read waits for one commit.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use crate::audit::AuditRecord;
use crate::error::StoreError;

/// Callers that may wait in the queue before `append` itself waits for room.
const QUEUE: usize = 4_096;
/// Records written in one transaction at most.
const MAX_BATCH: usize = 2_000;

struct Job {
    records: Vec<AuditRecord>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The handle to a store's audit writer task. The task ends when the last handle is dropped.
#[derive(Clone)]
pub struct GroupCommit {
    sender: mpsc::Sender<Job>,
}

fn stopped() -> StoreError {
    StoreError::Backend("the audit writer has stopped".into())
}

/// The same error for each waiter of a batch (`StoreError` holds no cloneable source).
fn for_each_waiter(e: &StoreError) -> StoreError {
    match e {
        StoreError::Busy => StoreError::Busy,
        other => StoreError::Backend(other.to_string()),
    }
}

/// The next group for a group-committing writer: waits for one job, then takes every job
/// already queued — without waiting for more — while the group's `weight` (records, entries,
/// messages) is under `max`. `None` once every sender is gone. Under load the groups grow by
/// themselves; a lone job goes alone, at once.
pub async fn next_group<T>(
    rx: &mut mpsc::Receiver<T>,
    max: usize,
    weight: impl Fn(&T) -> usize,
) -> Option<Vec<T>> {
    let first = rx.recv().await?;
    let mut n = weight(&first);
    let mut group = vec![first];
    while n < max {
        match rx.try_recv() {
            Ok(j) => {
                n += weight(&j);
                group.push(j);
            }
            Err(_) => break,
        }
    }
    Some(group)
}

impl GroupCommit {
    /// Starts the writer task on the current tokio runtime. `write` appends a batch of records
    /// to the chain in one transaction and commits it.
    pub fn start<F, Fut>(write: F) -> GroupCommit
    where
        F: Fn(Vec<AuditRecord>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), StoreError>> + Send + 'static,
    {
        let (sender, mut rx) = mpsc::channel::<Job>(QUEUE);
        tokio::spawn(async move {
            while let Some(mut jobs) = next_group(&mut rx, MAX_BATCH, |j| j.records.len()).await {
                let records: Vec<AuditRecord> = jobs
                    .iter_mut()
                    .flat_map(|j| std::mem::take(&mut j.records))
                    .collect();
                let result = write(records).await;
                for j in jobs {
                    let answer = match &result {
                        Ok(()) => Ok(()),
                        Err(e) => Err(for_each_waiter(e)),
                    };
                    // A caller that gave up waiting is no longer interested.
                    let _ = j.done.send(answer);
                }
            }
        });
        GroupCommit { sender }
    }

    /// Queues `records` and returns once they are committed (or the batch failed).
    pub async fn append(&self, records: Vec<AuditRecord>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        self.sender
            .send(Job { records, done })
            .await
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }
}
