//! Write-behind for a transaction: versions are kept until the transaction next reads what they
//! change, deletes or commits, then written together as multi-row statements
//! ([`crate::sql::versions_statements`]). Both backends use it, so a read inside a transaction
//! always sees the transaction's writes.
//!
//! A read flushes only when the buffer could change its answer: a read of one resource is
//! answered from the buffer when the resource is in it (and from the database without a flush
//! when it is not), a search flushes only when the buffer holds a resource type the search
//! reads, and an identifier look-up overlays the buffer on the database's answer. Many small
//! writes in one transaction (an HL7 batch of a hundred messages) therefore become one set of
//! multi-row statements instead of one set per message, each statement a round trip.

use std::collections::{HashMap, HashSet};

use carerecord_fhir::{LogicalId, ResourceType};
use carerecord_search::query::{Criterion, SearchQuery};

use crate::engine::SqlExec;
use crate::error::StoreError;
use crate::model::{ResourceKey, StoredResource};
use crate::prepare::PreparedVersion;
use crate::sql::{WriteStatement, versions_statements};

/// Versions flushed at once at the most, so one Bundle of any size stays within memory bounds.
const MAX_PENDING: usize = 2_000;

/// The index parameter identifier look-ups read ([`crate::ingest::IngestOp::Identified`]).
const IDENTIFIER: &str = "identifier";

#[derive(Default)]
pub struct Pending {
    versions: Vec<PreparedVersion>,
    /// Position in `versions` of each pending resource.
    keys: HashMap<(ResourceType, String), usize>,
    types: HashSet<ResourceType>,
    /// Positions in `versions` of the versions carrying each identifier (type, system, value).
    identifiers: HashMap<(ResourceType, String, String), Vec<usize>>,
}

impl Pending {
    /// Whether `v` must wait for a flush first: its resource already has a pending version
    /// (one multi-row upsert cannot write the same row twice), or the buffer is full.
    pub fn must_flush_before(&self, v: &PreparedVersion) -> bool {
        self.versions.len() >= MAX_PENDING
            || self
                .keys
                .contains_key(&(v.resource_type, v.id.as_str().to_owned()))
    }

    pub fn push(&mut self, v: PreparedVersion) {
        let at = self.versions.len();
        self.keys
            .insert((v.resource_type, v.id.as_str().to_owned()), at);
        self.types.insert(v.resource_type);
        for t in v.index.tokens.iter().filter(|t| t.param == IDENTIFIER) {
            if let (Some(system), Some(code)) = (&t.system, &t.code) {
                self.identifiers
                    .entry((v.resource_type, system.clone(), code.clone()))
                    .or_default()
                    .push(at);
            }
        }
        self.versions.push(v);
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// Forgets everything pending (the transaction rolled back past it).
    pub fn clear(&mut self) {
        self.versions.clear();
        self.keys.clear();
        self.types.clear();
        self.identifiers.clear();
    }

    /// The pending version of `rt`/`id`, as the database will hold it once flushed. `None`
    /// when the resource has no pending version: then the database's current row is still
    /// right, without a flush.
    pub fn current(&self, rt: ResourceType, id: &LogicalId) -> Option<StoredResource> {
        let i = *self.keys.get(&(rt, id.as_str().to_owned()))?;
        let v = self.versions.get(i)?;
        Some(StoredResource {
            resource_type: v.resource_type,
            id: v.id.clone(),
            version_id: v.version_id,
            last_updated: v.last_updated,
            deleted: false,
            body: v.body.clone(),
            patient_id: v.patient_id.clone(),
        })
    }

    /// Whether any of `keys` has a pending version.
    pub fn holds_any(&self, keys: &[ResourceKey]) -> bool {
        !self.versions.is_empty()
            && keys.iter().any(|k| {
                self.keys
                    .contains_key(&(k.resource_type, k.id.as_str().to_owned()))
            })
    }

    /// Whether the answer to `query` could depend on what is pending: it reads its own type
    /// and the targets of its chains (includes are not part of a key search, but are counted
    /// to be safe).
    pub fn affects(&self, query: &SearchQuery) -> bool {
        if self.versions.is_empty() {
            return false;
        }
        if self.types.contains(&query.resource_type)
            || !query.include.is_empty()
            || !query.revinclude.is_empty()
        {
            return true;
        }
        query.criteria.iter().any(|c| self.chain_affected(c))
    }

    fn chain_affected(&self, c: &Criterion) -> bool {
        match c {
            Criterion::Chain {
                target_type, inner, ..
            } => self.types.contains(target_type) || self.chain_affected(inner),
            _ => false,
        }
    }

    /// Overlays the pending versions on the database's answer to an identifier look-up
    /// (`found`: current resources carrying one of `keys`, each with the system and value that
    /// found it, read without a flush): answers for pending resources are replaced by what
    /// their pending versions carry.
    pub fn overlay_identified(
        &self,
        keys: &[(ResourceType, String, String)],
        found: Vec<(ResourceKey, String, String)>,
    ) -> Vec<(ResourceKey, String, String)> {
        if self.versions.is_empty() {
            return found;
        }
        let mut out: Vec<(ResourceKey, String, String)> = found
            .into_iter()
            .filter(|(k, _, _)| {
                !self
                    .keys
                    .contains_key(&(k.resource_type, k.id.as_str().to_owned()))
            })
            .collect();
        for key in keys {
            let Some(at) = self.identifiers.get(key) else {
                continue;
            };
            for v in at.iter().filter_map(|i| self.versions.get(*i)) {
                out.push((
                    ResourceKey {
                        resource_type: v.resource_type,
                        id: v.id.clone(),
                    },
                    key.1.clone(),
                    key.2.clone(),
                ));
            }
        }
        out
    }

    /// Writes everything pending through `exec`; the buffer is left empty. A version another
    /// transaction took first (the guarded upsert changed fewer rows than it must) is
    /// `AlreadyExists`, which the write path retries as a conflict. After an error the
    /// transaction must be rolled back, entirely or to a savepoint: what was not yet written is
    /// gone from the buffer, and the failed statement may have written part of its rows
    /// ([`SqlExec::execute_write`]).
    pub async fn flush(&mut self, exec: &mut dyn SqlExec) -> Result<(), StoreError> {
        for w in self.take_statements() {
            let changed = exec.execute_write(w.statement).await?;
            if w.must_change.is_some_and(|n| n != changed) {
                return Err(StoreError::AlreadyExists);
            }
        }
        Ok(())
    }

    /// The statements that write everything pending; the buffer is left empty.
    pub fn take_statements(&mut self) -> Vec<WriteStatement> {
        if self.versions.is_empty() {
            return Vec::new();
        }
        let versions = std::mem::take(&mut self.versions);
        self.clear();
        versions_statements(versions)
    }
}
