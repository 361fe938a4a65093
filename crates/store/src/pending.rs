//! Write-behind for a transaction: versions are kept until the transaction next reads, deletes
//! or commits, then written together as multi-row statements ([`crate::sql::versions_statements`]).
//! Both backends use it, so a read inside a transaction always sees the transaction's writes.

use std::collections::HashSet;

use carerecord_fhir::ResourceType;

use crate::prepare::PreparedVersion;
use crate::sql::{WriteStatement, versions_statements};

/// Versions flushed at once at the most, so one Bundle of any size stays within memory bounds.
const MAX_PENDING: usize = 2_000;

#[derive(Default)]
pub struct Pending {
    versions: Vec<PreparedVersion>,
    keys: HashSet<(ResourceType, String)>,
}

impl Pending {
    /// Whether `v` must wait for a flush first: its resource already has a pending version
    /// (one multi-row upsert cannot write the same row twice), or the buffer is full.
    pub fn must_flush_before(&self, v: &PreparedVersion) -> bool {
        self.versions.len() >= MAX_PENDING
            || self
                .keys
                .contains(&(v.resource_type, v.id.as_str().to_owned()))
    }

    pub fn push(&mut self, v: PreparedVersion) {
        self.keys
            .insert((v.resource_type, v.id.as_str().to_owned()));
        self.versions.push(v);
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// Forgets everything pending (the transaction rolled back past it).
    pub fn clear(&mut self) {
        self.versions.clear();
        self.keys.clear();
    }

    /// The statements that write everything pending; the buffer is left empty.
    pub fn take_statements(&mut self) -> Vec<WriteStatement> {
        if self.versions.is_empty() {
            return Vec::new();
        }
        let refs: Vec<&PreparedVersion> = self.versions.iter().collect();
        let out = versions_statements(&refs);
        self.versions.clear();
        self.keys.clear();
        out
    }
}
