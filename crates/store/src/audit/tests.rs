//! The pure chain: canonical bytes, hashing, and the verifier's verdict for each kind of
//! tampering, as table tests and as properties over random chains and random changes.

use proptest::prelude::*;

use super::*;

fn key() -> AuditKey {
    AuditKey::new(&[7u8; 32]).unwrap()
}

fn agent(i: usize) -> AuditAgent {
    AuditAgent {
        kind: PrincipalKind::User,
        id: format!("user-{}", i % 3),
        name: Some("Test Clinician".into()),
        role: Some("R8000".into()),
        organisation_id: Some("org-1".into()),
        ods_code: Some("A99999".into()),
    }
}

fn record(i: usize) -> AuditRecord {
    let mut r = AuditRecord::new(
        1_764_000_000_000_000 + i as i64,
        AuditAction::ALL[i % AuditAction::ALL.len()],
        AuditOutcome::Allowed,
        "legitimate-relationship",
        agent(i),
        Channel::Api,
    );
    r.patient_ids = vec![format!("pat-{}", i % 5)];
    r.resources = vec![format!("Observation/obs-{i}/_history/1")];
    r.request_id = Some(format!("req-{i}"));
    r
}

fn trail(n: usize) -> Vec<AuditEntry> {
    chain(&key(), 0, GENESIS, (0..n).map(record).collect())
}

fn forged(seq: i64, prev: Hash) -> AuditEntry {
    let mut record = record(999);
    record.rule = "forged".into();
    AuditEntry {
        seq,
        record,
        prev_hash: prev,
        // Without the key, an attacker can only guess.
        hash: [0xab; HASH_LEN],
    }
}

fn problem(entries: Vec<AuditEntry>) -> Option<(i64, TamperKind)> {
    verify(entries, &key()).problem.map(|t| (t.seq, t.kind))
}

/// The changes an attacker with write access to the table can make, as they look when the
/// trail is read back ordered by sequence number.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// Alter a field of entry `i` (0-based).
    Change(usize),
    /// Remove entry `i`.
    Delete(usize),
    /// Remove entry `i` and renumber the later ones down to close the gap.
    DeleteRenumber(usize),
    /// Put a forged entry before entry `i`, renumbering the later ones up.
    InsertRenumber(usize),
    /// A forged entry with the same number as entry `i` (uniqueness dropped), read first.
    InsertDuplicate(usize),
    /// Exchange the sequence numbers of entries `i` and `i + 1`.
    SwapNumbers(usize),
    /// Return entries `i` and `i + 1` in the other order, numbers unchanged.
    SwapPositions(usize),
}

fn apply(mut v: Vec<AuditEntry>, op: Op) -> Vec<AuditEntry> {
    match op {
        Op::Change(i) => v[i].record.rule = "altered".into(),
        Op::Delete(i) => {
            v.remove(i);
        }
        Op::DeleteRenumber(i) => {
            v.remove(i);
            for e in &mut v[i..] {
                e.seq -= 1;
            }
        }
        Op::InsertRenumber(i) => {
            let prev = if i == 0 { GENESIS } else { v[i - 1].hash };
            for e in &mut v[i..] {
                e.seq += 1;
            }
            v.insert(i, forged(i as i64 + 1, prev));
        }
        Op::InsertDuplicate(i) => {
            let prev = v[i].prev_hash;
            v.insert(i, forged(i as i64 + 1, prev));
        }
        Op::SwapNumbers(i) => {
            let (a, b) = (v[i].seq, v[i + 1].seq);
            v[i].seq = b;
            v[i + 1].seq = a;
            v.swap(i, i + 1);
        }
        Op::SwapPositions(i) => v.swap(i, i + 1),
    }
    v
}

/// What the verifier must say about `op` on a trail of `n` entries.
fn expected(op: Op, n: usize) -> Option<(i64, TamperKind)> {
    let seq = |i: usize| i as i64 + 1;
    match op {
        Op::Change(i) => Some((seq(i), TamperKind::Changed)),
        // Removing the last entries leaves a shorter, valid chain: only an anchor shows it.
        Op::Delete(i) | Op::DeleteRenumber(i) if i + 1 == n => None,
        Op::Delete(i) | Op::DeleteRenumber(i) => Some((seq(i), TamperKind::Deleted)),
        Op::InsertRenumber(i) | Op::InsertDuplicate(i) => Some((seq(i), TamperKind::Inserted)),
        Op::SwapNumbers(i) | Op::SwapPositions(i) => Some((seq(i), TamperKind::Reordered)),
    }
}

#[test]
fn an_untouched_trail_verifies_and_reports_its_head() {
    let t = trail(10);
    let head = (t[9].seq, t[9].hash);
    let r = verify(t, &key());
    assert!(r.is_intact());
    assert_eq!(r.verified, 10);
    assert_eq!(r.head, Some(head));
    assert_eq!(verify(Vec::new(), &key()).verified, 0);
}

#[test]
fn every_kind_of_change_is_found_at_the_right_entry() {
    let n = 10;
    let table = [
        Op::Change(0),
        Op::Change(4),
        Op::Change(9),
        Op::Delete(0),
        Op::Delete(4),
        Op::DeleteRenumber(4),
        Op::InsertRenumber(0),
        Op::InsertRenumber(4),
        Op::InsertDuplicate(4),
        Op::SwapNumbers(0),
        Op::SwapNumbers(4),
        Op::SwapNumbers(8),
        Op::SwapPositions(4),
    ];
    for op in table {
        assert_eq!(
            problem(apply(trail(n), op)),
            expected(op, n),
            "{op:?} on {n} entries"
        );
    }
}

#[test]
fn a_changed_hash_or_link_is_a_change() {
    let mut t = trail(6);
    t[2].hash[0] ^= 1;
    assert_eq!(problem(t), Some((3, TamperKind::Changed)));
    let mut t = trail(6);
    t[2].prev_hash[0] ^= 1;
    assert_eq!(problem(t), Some((3, TamperKind::Changed)));
}

#[test]
fn a_forged_entry_after_the_last_is_reported_at_its_number() {
    let mut t = trail(5);
    let prev = t[4].hash;
    t.push(forged(6, prev));
    // Indistinguishable from an altered last entry without an anchor: reported as changed.
    assert_eq!(problem(t), Some((6, TamperKind::Changed)));
}

#[test]
fn a_duplicate_number_read_second_is_an_insertion() {
    let mut t = trail(5);
    let prev = t[2].prev_hash;
    t.insert(3, forged(3, prev));
    assert_eq!(problem(t), Some((3, TamperKind::Inserted)));
}

#[test]
fn a_different_key_finds_the_first_entry_changed() {
    let t = trail(3);
    let other = AuditKey::new(&[8u8; 32]).unwrap();
    assert_eq!(
        verify(t, &other).problem,
        Some(Tamper {
            seq: 1,
            kind: TamperKind::Changed
        })
    );
}

#[test]
fn an_anchor_shows_the_newest_entries_removed_or_the_chain_rebuilt() {
    let t = trail(6);
    let (seq, hash) = (t[5].seq, t[5].hash);
    let anchored = |entries: Vec<AuditEntry>, anchor: (i64, Hash)| {
        let mut v = Verifier::new(key()).with_anchor(anchor.0, anchor.1);
        for e in entries {
            if !v.push(e) {
                break;
            }
        }
        v.finish().problem.map(|p| (p.seq, p.kind))
    };
    assert_eq!(anchored(t.clone(), (seq, hash)), None);
    assert_eq!(
        anchored(t.clone(), (3, t[2].hash)),
        None,
        "older anchors still hold"
    );
    assert_eq!(
        anchored(t[..4].to_vec(), (seq, hash)),
        Some((5, TamperKind::Deleted))
    );
    assert_eq!(
        anchored(Vec::new(), (seq, hash)),
        Some((1, TamperKind::Deleted))
    );
    // Rebuilt with the key from entry 2 on: internally valid, but not what was recorded.
    let mut rebuilt = trail(1);
    let mut later: Vec<AuditRecord> = (1..6).map(record).collect();
    later[0].rule = "rewritten".into();
    rebuilt.extend(chain(&key(), 1, rebuilt[0].hash, later));
    assert!(verify(rebuilt.clone(), &key()).is_intact());
    assert_eq!(
        anchored(rebuilt, (seq, hash)),
        Some((6, TamperKind::Changed))
    );
}

#[test]
fn canonical_bytes_tell_absent_from_empty_and_shifted_fields() {
    let a = record(1);
    let mut b = a.clone();
    b.query = Some(String::new());
    assert_ne!(canonical(1, &a), canonical(1, &b));
    let mut c = a.clone();
    c.resources = vec!["Observation/a".into(), "b".into()];
    let mut d = a.clone();
    d.resources = vec!["Observation/ab".into()];
    assert_ne!(canonical(1, &c), canonical(1, &d));
    assert_ne!(canonical(1, &a), canonical(2, &a));
    assert!(canonical(1, &a).starts_with(b"carerecord.audit.v1\0"));
}

#[test]
fn hashes_round_trip_through_hex_and_keys_are_not_printed() {
    let h = trail(1)[0].hash;
    assert_eq!(parse_hash(&hash_hex(&h)), Some(h));
    assert_eq!(parse_hash("zz"), None);
    assert_eq!(format!("{:?}", key()), "AuditKey(***)");
    assert!(AuditKey::new(&[1u8; 8]).is_err());
}

#[test]
fn codes_round_trip() {
    for a in AuditAction::ALL {
        assert_eq!(a.as_str().parse::<AuditAction>().unwrap(), *a);
    }
    for o in AuditOutcome::ALL {
        assert_eq!(o.as_str().parse::<AuditOutcome>().unwrap(), *o);
    }
    assert!("nope".parse::<Channel>().is_err());
}

fn op_strategy(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..n).prop_map(Op::Change),
        (0..n).prop_map(Op::Delete),
        (0..n).prop_map(Op::DeleteRenumber),
        (0..n).prop_map(Op::InsertRenumber),
        (0..n).prop_map(Op::InsertDuplicate),
        (0..n - 1).prop_map(Op::SwapNumbers),
        (0..n - 1).prop_map(Op::SwapPositions),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_single_change_is_found_and_named((n, op) in (2usize..40).prop_flat_map(|n| (Just(n), op_strategy(n)))) {
        prop_assert_eq!(problem(apply(trail(n), op)), expected(op, n));
    }

    #[test]
    fn a_trail_verifies_from_any_number_of_entries(n in 0usize..60) {
        let r = verify(trail(n), &key());
        prop_assert!(r.is_intact());
        prop_assert_eq!(r.verified, n as u64);
    }
}
