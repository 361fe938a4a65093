//! `carerecord import` is accountable: one audit entry per file, naming the operator, the
//! source file and its counts, under the hash chain `audit verify` checks.
#![allow(
    clippy::panic,
    reason = "test code: a failed expectation is a failed test"
)]

use std::path::Path;

use carerecord_store::{AuditAction, AuditOutcome, AuditRecord, Channel, PrincipalKind};

use super::{carerecord, generate, run_verify};

/// The audit trail of the store under `db`, oldest first.
fn trail(db: &Path) -> Vec<AuditRecord> {
    let config = carerecord::config::Config {
        data_dir: db.to_owned(),
        ..carerecord::config::Config::default()
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = carerecord::open_store(&config).await.unwrap();
        store
            .audit_entries(0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.record)
            .collect()
    })
}

/// `source=… accepted=N rejected=M` of an import entry.
fn counts(r: &AuditRecord) -> (String, u64, u64) {
    let q = r.query.as_deref().unwrap();
    let field = |name: &str| {
        q.split(' ')
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {q}"))
            .to_owned()
    };
    (
        field("source"),
        field("accepted").parse().unwrap(),
        field("rejected").parse().unwrap(),
    )
}

#[test]
fn an_import_writes_one_entry_per_file_naming_operator_source_and_counts() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("in");
    generate(&data, "3");
    std::fs::write(
        data.join("extra.ndjson"),
        concat!(
            r#"{"resourceType":"Patient","id":"bad-1","birthDate":"1940-13-01"}"#,
            "\n",
            "this is not json\n",
            r#"{"resourceType":"Patient","id":"good-1","birthDate":"1940-12-01"}"#,
            "\n"
        ),
    )
    .unwrap();
    let db = t.path().join("db");
    let out = carerecord(&[
        "import",
        data.to_str().unwrap(),
        "--operator",
        "alice",
        "--data-dir",
        db.to_str().unwrap(),
        "--metrics-listen",
        "off",
    ]);
    assert!(!out.status.success(), "two lines are refused");
    let total: u64 = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();

    let entries = trail(&db);
    // One per file (extra.ndjson, organisations.json, people.ndjson), none per resource.
    assert_eq!(entries.len(), 3, "{entries:#?}");
    let mut accepted = 0;
    for (e, file) in entries
        .iter()
        .zip(["extra.ndjson", "organisations.json", "people.ndjson"])
    {
        assert_eq!(
            (e.action, e.outcome, e.rule.as_str(), e.channel),
            (
                AuditAction::Admin,
                AuditOutcome::Allowed,
                "import-file",
                Channel::Cli
            )
        );
        assert_eq!(
            (e.agent.kind, e.agent.id.as_str()),
            (PrincipalKind::User, "cli:alice")
        );
        let (source, ok, refused) = counts(e);
        assert!(source.ends_with(file), "{source} is not {file}");
        if file == "extra.ndjson" {
            assert_eq!((ok, refused), (1, 2));
        } else {
            assert!(ok > 0, "{file}");
            assert_eq!(refused, 0, "{file}");
        }
        accepted += ok;
    }
    assert_eq!(accepted, total, "the entries account for every resource");

    // The import's entries are in the chain.
    let verify = run_verify(&db);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    assert!(String::from_utf8_lossy(&verify.stdout).contains("intact: 3 entries"));

    // Without --operator, the OS user is named; a rerun is audited again.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_carerecord"))
        .args([
            "import",
            data.join("organisations.json").to_str().unwrap(),
            "--data-dir",
            db.to_str().unwrap(),
            "--metrics-listen",
            "off",
        ])
        .env("USER", "bob")
        .output()
        .unwrap();
    assert!(again.status.success());
    let entries = trail(&db);
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[3].agent.id, "cli:bob");
    assert!(run_verify(&db).status.success());
}
