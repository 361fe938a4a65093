//! The tamper-evident audit trail: what an entry holds, how it is hashed into a chain, and how
//! a chain is verified.
//!
//! Every entry carries a store-assigned sequence number (monotonic and gap-free, so a changed
//! clock cannot hide anything), the hash of the entry before it, and its own hash:
//! `HMAC-SHA-256(key, prev_hash || canonical(seq, record))`. The hash is keyed so that someone who
//! can write to the database but does not hold the key cannot forge or re-chain entries.
//! [`canonical`] is an explicit, versioned byte encoding: the hash never depends on a
//! serializer's map order or a database's text formatting.
//!
//! [`Verifier`] (and [`verify`] over an iterator) walks a chain in sequence order and names the
//! first problem and its kind. It is pure: backends only hand it entries.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::StoreError;

/// Bytes in a hash.
pub const HASH_LEN: usize = 32;

/// A chain hash (HMAC-SHA-256 output).
pub type Hash = [u8; HASH_LEN];

/// The `prev_hash` of the first entry.
pub const GENESIS: Hash = [0; HASH_LEN];

/// The version tag at the start of every canonical encoding. A new layout gets a new tag, so
/// entries written under an old one still verify.
const CANONICAL_V1: &[u8] = b"carerecord.audit.v1\0";

/// The shortest key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 16;

macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The code stored in the database and hashed.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $code),+
                }
            }
        }

        impl FromStr for $name {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, StoreError> {
                match s {
                    $($code => Ok($name::$variant),)+
                    _ => Err(StoreError::Backend(format!(
                        "unknown {} code in the audit trail",
                        stringify!($name)
                    ))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

code_enum!(
    /// What happened.
    AuditAction {
        Read = "read",
        Vread = "vread",
        Search = "search",
        History = "history",
        Everything = "everything",
        Create = "create",
        Update = "update",
        Delete = "delete",
        Transaction = "transaction",
        Export = "export",
        Login = "login",
        LoginFailed = "login-failed",
        Logout = "logout",
        BreakGlass = "break-glass",
        Denial = "denial",
        Admin = "admin",
        Token = "token",
        Lockout = "lockout",
        BreakGlassReview = "break-glass-review",
    }
);

code_enum!(
    /// The access decision.
    AuditOutcome {
        Allowed = "allowed",
        Denied = "denied",
        Error = "error",
    }
);

code_enum!(
    /// Who acted: a person or a system (an interface, a batch job).
    PrincipalKind {
        User = "user",
        System = "system",
    }
);

code_enum!(
    /// How the request arrived (`hl7v2`: an HL7 v2 feed over MLLP).
    Channel {
        Api = "api",
        Portal = "portal",
        Launch = "launch",
        Cli = "cli",
        Hl7 = "hl7v2",
    }
);

/// The person or system that acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditAgent {
    pub kind: PrincipalKind,
    /// The principal's id (a user id or a system's client id).
    pub id: String,
    /// The display name, for the privacy officer's report; never logged.
    pub name: Option<String>,
    /// The role code the principal acted in (e.g. an NHS national RBAC role code).
    pub role: Option<String>,
    /// The organisation's id in carerecord.
    pub organisation_id: Option<String>,
    /// The organisation's ODS code.
    pub ods_code: Option<String>,
}

/// A break-glass reason: a code and the user's own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlass {
    pub code: String,
    pub text: String,
}

/// What a caller records: one access, allowed or not. The store adds the sequence number and
/// hashes. Free text here (names, the query, the break-glass reason) goes to the audit table
/// only, never to logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// When it happened, microseconds since the Unix epoch.
    pub time: i64,
    pub action: AuditAction,
    pub outcome: AuditOutcome,
    /// The access rule that decided (e.g. `legitimate-relationship`, `break-glass`).
    pub rule: String,
    pub agent: AuditAgent,
    /// The authorising person when the agent acted for someone else.
    pub on_behalf_of: Option<String>,
    /// The client's network address.
    pub client_address: Option<String>,
    pub channel: Channel,
    /// Purpose of use code (v3 ActReason: `TREAT`, `ETREAT` for break-glass, …).
    pub purpose_of_use: Option<String>,
    pub break_glass: Option<BreakGlass>,
    /// The Patient ids whose record was touched (the person).
    pub patient_ids: Vec<String>,
    /// Resources touched, as `Type/id/_history/version` (or `Type/id`).
    pub resources: Vec<String>,
    /// The search query as received (held in the audit table only).
    pub query: Option<String>,
    pub request_id: Option<String>,
}

impl AuditRecord {
    /// A record with the required fields; the rest empty.
    pub fn new(
        time: i64,
        action: AuditAction,
        outcome: AuditOutcome,
        rule: impl Into<String>,
        agent: AuditAgent,
        channel: Channel,
    ) -> Self {
        AuditRecord {
            time,
            action,
            outcome,
            rule: rule.into(),
            agent,
            on_behalf_of: None,
            client_address: None,
            channel,
            purpose_of_use: None,
            break_glass: None,
            patient_ids: Vec::new(),
            resources: Vec::new(),
            query: None,
            request_id: None,
        }
    }
}

/// A stored entry: the record, its place in the chain and its hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// 1, 2, 3, …: assigned by the store under its writer lock, without gaps.
    pub seq: i64,
    pub record: AuditRecord,
    pub prev_hash: Hash,
    pub hash: Hash,
}

/// The key the chain is hashed with, ready to use. Its bytes are never printed.
#[derive(Clone)]
pub struct AuditKey(Hmac<Sha256>);

impl AuditKey {
    /// A key of at least [`MIN_KEY_LEN`] bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, StoreError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(StoreError::Backend(format!(
                "the audit key must be at least {MIN_KEY_LEN} bytes"
            )));
        }
        <Hmac<Sha256> as KeyInit>::new_from_slice(bytes)
            .map(AuditKey)
            .map_err(|_| StoreError::Backend("the audit key cannot be used".into()))
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(***)")
    }
}

// ---------------------------------------------------------------------------------------------
// Canonical encoding and hashing
// ---------------------------------------------------------------------------------------------

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Length-prefixed, so no two different field sequences encode to the same bytes.
    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

fn put_list(out: &mut Vec<u8>, items: &[String]) {
    out.extend_from_slice(&u32::try_from(items.len()).unwrap_or(u32::MAX).to_be_bytes());
    for i in items {
        put_str(out, i);
    }
}

/// The canonical bytes of entry `seq` holding `r`: a version tag, then every field in a fixed
/// order, integers big-endian, strings length-prefixed, optional fields tagged.
pub fn canonical(seq: i64, r: &AuditRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(CANONICAL_V1);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&r.time.to_be_bytes());
    put_str(&mut out, r.action.as_str());
    put_str(&mut out, r.outcome.as_str());
    put_str(&mut out, &r.rule);
    put_str(&mut out, r.agent.kind.as_str());
    put_str(&mut out, &r.agent.id);
    put_opt(&mut out, r.agent.name.as_deref());
    put_opt(&mut out, r.agent.role.as_deref());
    put_opt(&mut out, r.agent.organisation_id.as_deref());
    put_opt(&mut out, r.agent.ods_code.as_deref());
    put_opt(&mut out, r.on_behalf_of.as_deref());
    put_opt(&mut out, r.client_address.as_deref());
    put_str(&mut out, r.channel.as_str());
    put_opt(&mut out, r.purpose_of_use.as_deref());
    match &r.break_glass {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            put_str(&mut out, &b.code);
            put_str(&mut out, &b.text);
        }
    }
    put_list(&mut out, &r.patient_ids);
    put_list(&mut out, &r.resources);
    put_opt(&mut out, r.query.as_deref());
    put_opt(&mut out, r.request_id.as_deref());
    out
}

/// `HMAC-SHA-256(key, prev || canonical(seq, r))`.
pub fn entry_hash(key: &AuditKey, prev: &Hash, seq: i64, r: &AuditRecord) -> Hash {
    let mut mac = key.0.clone();
    mac.update(prev);
    mac.update(&canonical(seq, r));
    let mut out = [0u8; HASH_LEN];
    out.copy_from_slice(mac.finalize().into_bytes().as_slice());
    out
}

/// Chains `records` after the entry `(last_seq, last_hash)` (`(0, GENESIS)` for an empty trail).
pub fn chain(
    key: &AuditKey,
    last_seq: i64,
    last_hash: Hash,
    records: Vec<AuditRecord>,
) -> Vec<AuditEntry> {
    let mut prev = last_hash;
    let mut seq = last_seq;
    records
        .into_iter()
        .map(|record| {
            seq += 1;
            let hash = entry_hash(key, &prev, seq, &record);
            let e = AuditEntry {
                seq,
                record,
                prev_hash: prev,
                hash,
            };
            prev = hash;
            e
        })
        .collect()
}

/// Lower-case hex, as hashes are stored and printed.
pub fn hash_hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses [`hash_hex`] text.
pub fn parse_hash(s: &str) -> Option<Hash> {
    if s.len() != HASH_LEN * 2 {
        return None;
    }
    let mut out = [0u8; HASH_LEN];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

/// The kind of change found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TamperKind {
    /// An entry's content (or its hashes) no longer matches its hash.
    Changed,
    /// One or more entries are missing (a gap in the sequence).
    Deleted,
    /// An entry that was never appended by carerecord is present (a forged or duplicated one).
    Inserted,
    /// Genuine entries are out of their sequence order.
    Reordered,
}

impl TamperKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TamperKind::Changed => "changed",
            TamperKind::Deleted => "deleted",
            TamperKind::Inserted => "inserted",
            TamperKind::Reordered => "reordered",
        }
    }
}

impl fmt::Display for TamperKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first problem in a chain: at which sequence number, and what kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tamper {
    pub seq: i64,
    pub kind: TamperKind,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries that verified before the first problem (all of them when intact).
    pub verified: u64,
    /// The last verified entry's sequence number and hash: the anchor an operator can record
    /// elsewhere, since removing entries from the end is only detectable against it.
    pub head: Option<(i64, Hash)>,
    pub problem: Option<Tamper>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }
}

/// How far around a suspicious entry the verifier looks to tell the kinds of change apart.
const WINDOW: usize = 64;

/// Verifies a chain entry by entry (so a long trail streams in pages). Feed entries in the
/// order the store returns them (by sequence number) with [`Verifier::push`] while it returns
/// `true`, then call [`Verifier::finish`].
pub struct Verifier {
    key: AuditKey,
    expected: i64,
    last_seq: Option<i64>,
    last_hash: Hash,
    verified: u64,
    suspect: Option<(AuditEntry, Vec<AuditEntry>)>,
    done: Option<Tamper>,
    anchor: Option<(i64, Hash)>,
}

impl Verifier {
    /// A verifier for a whole trail (from sequence number 1).
    pub fn new(key: AuditKey) -> Self {
        Verifier {
            key,
            expected: 1,
            last_seq: None,
            last_hash: GENESIS,
            verified: 0,
            suspect: None,
            done: None,
            anchor: None,
        }
    }

    /// Also checks the trail against a head recorded earlier (by `audit verify`, kept outside
    /// the database): entry `seq` must still exist and have `hash`. This is what shows the
    /// newest entries removed, which the chain alone cannot.
    pub fn with_anchor(mut self, seq: i64, hash: Hash) -> Self {
        self.anchor = Some((seq, hash));
        self
    }

    fn hash_ok(&self, e: &AuditEntry, seq: i64) -> bool {
        entry_hash(&self.key, &e.prev_hash, seq, &e.record) == e.hash
    }

    /// Adds the next entry; `false` once the outcome is known (stop feeding).
    pub fn push(&mut self, e: AuditEntry) -> bool {
        if self.done.is_some() {
            return false;
        }
        if let Some((_, after)) = &mut self.suspect {
            after.push(e);
            if after.len() >= WINDOW {
                self.decide();
                return false;
            }
            return true;
        }
        let in_order = self.last_seq.is_none_or(|p| e.seq > p);
        if in_order
            && e.seq == self.expected
            && e.prev_hash == self.last_hash
            && self.hash_ok(&e, e.seq)
        {
            if self.anchor.is_some_and(|(s, h)| s == e.seq && h != e.hash) {
                // A chain that verifies but differs from the recorded head was rebuilt.
                self.done = Some(Tamper {
                    seq: e.seq,
                    kind: TamperKind::Changed,
                });
                return false;
            }
            self.expected = e.seq + 1;
            self.last_seq = Some(e.seq);
            self.last_hash = e.hash;
            self.verified += 1;
            return true;
        }
        self.suspect = Some((e, Vec::new()));
        true
    }

    /// The report, once every entry has been pushed (or `push` said stop).
    pub fn finish(mut self) -> VerifyReport {
        if self.done.is_none() && self.suspect.is_some() {
            self.decide();
        }
        let head = self.last_seq.unwrap_or(0);
        if self.done.is_none()
            && let Some((s, _)) = self.anchor
            && s > head
        {
            self.done = Some(Tamper {
                seq: head + 1,
                kind: TamperKind::Deleted,
            });
        }
        VerifyReport {
            verified: self.verified,
            head: self.last_seq.map(|s| (s, self.last_hash)),
            problem: self.done,
        }
    }

    /// Whether `e` is a genuine entry at some sequence number near its own, and which.
    fn genuine_at(&self, e: &AuditEntry) -> Option<i64> {
        if self.hash_ok(e, e.seq) {
            return Some(e.seq);
        }
        let w = WINDOW as i64;
        (1..=w)
            .flat_map(|d| [e.seq - d, e.seq + d])
            .filter(|t| *t >= 1)
            .find(|t| self.hash_ok(e, *t))
    }

    /// Names the first problem, given the suspicious entry and what follows it.
    ///
    /// Rules, in order (`x` is the sequence number expected next, `L` the last good hash):
    /// 1. its number is not above the previous one: a repeat is `Inserted`, a lower one
    ///    `Reordered`;
    /// 2. it is genuine, and the entry that belongs at `x` comes later: `Reordered`;
    /// 3. its number skips past `x`: `Deleted`;
    /// 4. its content verifies at its number but it does not link to `L`: `Inserted`;
    /// 5. it is genuine but was renumbered: down (entries removed before it) `Deleted`, up
    ///    (something put before it) `Inserted`;
    /// 6. it is not genuine and the next entry links straight to `L`: an extra, `Inserted`;
    /// 7. otherwise its content was altered: `Changed`.
    fn decide(&mut self) {
        let Some((e, after)) = self.suspect.take() else {
            return;
        };
        let x = self.expected;
        let l = self.last_hash;
        let at = |kind| Some(Tamper { seq: x, kind });
        self.done = if let Some(p) = self.last_seq.filter(|p| e.seq <= *p) {
            Some(Tamper {
                seq: e.seq,
                kind: if e.seq == p {
                    TamperKind::Inserted
                } else {
                    TamperKind::Reordered
                },
            })
        } else {
            let genuine = self.genuine_at(&e);
            let belongs_later = after.iter().any(|a| self.hash_ok(a, x));
            if genuine.is_some() && belongs_later {
                at(TamperKind::Reordered)
            } else if e.seq > x {
                at(TamperKind::Deleted)
            } else if genuine == Some(e.seq) {
                at(TamperKind::Inserted)
            } else if let Some(t) = genuine {
                at(if t > e.seq {
                    TamperKind::Deleted
                } else {
                    TamperKind::Inserted
                })
            } else if after.first().is_some_and(|n| n.prev_hash == l) {
                at(TamperKind::Inserted)
            } else {
                at(TamperKind::Changed)
            }
        };
    }
}

/// Verifies a whole trail given in sequence order: the first problem and its kind.
pub fn verify(entries: impl IntoIterator<Item = AuditEntry>, key: &AuditKey) -> VerifyReport {
    let mut v = Verifier::new(key.clone());
    for e in entries {
        if !v.push(e) {
            break;
        }
    }
    v.finish()
}

/// Entries read per page by [`verify_trail`].
pub const VERIFY_PAGE: u32 = 1_000;

/// Verifies the whole trail of `store`, reading it page by page.
pub async fn verify_trail(
    store: &dyn crate::ResourceStore,
    key: &AuditKey,
) -> Result<VerifyReport, StoreError> {
    verify_trail_anchored(store, key, None).await
}

/// [`verify_trail`], also checking a head recorded earlier (see [`Verifier::with_anchor`]).
pub async fn verify_trail_anchored(
    store: &dyn crate::ResourceStore,
    key: &AuditKey,
    anchor: Option<(i64, Hash)>,
) -> Result<VerifyReport, StoreError> {
    let mut v = Verifier::new(key.clone());
    if let Some((seq, hash)) = anchor {
        v = v.with_anchor(seq, hash);
    }
    let mut after = 0;
    'pages: loop {
        let page = store.audit_entries(after, VERIFY_PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.seq;
        for e in page {
            if !v.push(e) {
                break 'pages;
            }
        }
    }
    Ok(v.finish())
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

/// What privacy officers search the trail by; every field narrows, `None` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Entries that touched this Patient's record.
    pub patient_id: Option<String>,
    /// Entries by this principal id.
    pub agent_id: Option<String>,
    /// Entries by principals of this organisation (carerecord id or ODS code).
    pub organisation: Option<String>,
    /// At or after this time (µs).
    pub since: Option<i64>,
    /// Before this time (µs).
    pub before: Option<i64>,
    pub outcome: Option<AuditOutcome>,
    pub action: Option<AuditAction>,
    /// Entries decided by this rule (e.g. `deny-training-expired`, `account-locked`).
    pub rule: Option<String>,
    /// Only this entry (by sequence number).
    pub seq: Option<i64>,
    /// What one organisation's privacy officer may review: entries by its own staff and
    /// systems, and entries about people currently in its care.
    pub scope: Option<AuditScope>,
}

/// An organisation's share of the audit trail (see [`AuditFilter::scope`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditScope {
    pub org_id: String,
    /// Now (µs): relationships live at this instant count.
    pub now: i64,
    /// Encounters that ended at or after this still count.
    pub encounter_cutoff: i64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
mod tests;
