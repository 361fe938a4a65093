//! `carerecord import` is accountable: an audit entry in every commit's own transaction (the
//! file, its lines, the resources written) and one per file (its counts), naming the operator,
//! under the hash chain `audit verify` checks.
#![allow(
    clippy::panic,
    reason = "test code: a failed expectation is a failed test"
)]

use std::path::Path;

use carerecord_store::{AuditAction, AuditOutcome, AuditRecord, Channel, PrincipalKind};

use super::{carerecord, generate, generate_sized, run_verify};

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

/// The `name=` field of an import entry's text.
fn field(r: &AuditRecord, name: &str) -> String {
    let q = r.query.as_deref().unwrap();
    q.split(' ')
        .find_map(|p| p.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {q}"))
        .to_owned()
}

/// `source=… accepted=N rejected=M` of a file's entry.
fn counts(r: &AuditRecord) -> (String, u64, u64) {
    (
        field(r, "source"),
        field(r, "accepted").parse().unwrap(),
        field(r, "rejected").parse().unwrap(),
    )
}

/// The entries of `rule`.
fn of_rule<'a>(entries: &'a [AuditRecord], rule: &str) -> Vec<&'a AuditRecord> {
    entries.iter().filter(|e| e.rule == rule).collect()
}

#[test]
fn an_import_writes_an_entry_per_commit_and_per_file_naming_operator_source_and_counts() {
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

    let all = trail(&db);
    let files = of_rule(&all, "import-file");
    let batches = of_rule(&all, "import-batch");
    assert_eq!(files.len() + batches.len(), all.len(), "{all:#?}");
    // One per file (extra.ndjson, organisations.json, people.ndjson), none per resource.
    assert_eq!(files.len(), 3, "{files:#?}");
    let mut accepted = 0;
    for (e, file) in files
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
    // And so do the commits' entries, each within one file.
    let mut written = 0;
    for b in &batches {
        assert_eq!(
            (b.agent.id.as_str(), b.channel, b.action),
            ("cli:alice", Channel::Cli, AuditAction::Admin)
        );
        assert!(field(b, "lines").contains('-'));
        written += field(b, "resources").parse::<u64>().unwrap();
    }
    assert_eq!(written, total, "{batches:#?}");
    let extra: Vec<_> = batches
        .iter()
        .filter(|b| field(b, "source").ends_with("extra.ndjson"))
        .collect();
    // The bad line refused the batch, so each line was written alone: only line 3 stored.
    assert_eq!(extra.len(), 1);
    assert_eq!(field(extra[0], "lines"), "3-3");

    // The import's entries are in the chain.
    let verify = run_verify(&db);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    assert!(
        String::from_utf8_lossy(&verify.stdout).contains(&format!("intact: {} entries", all.len()))
    );

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
    let files = of_rule(&entries, "import-file");
    assert_eq!(files.len(), 4);
    assert_eq!(files[3].agent.id, "cli:bob");
    assert_eq!(entries.last().map(|e| e.agent.id.as_str()), Some("cli:bob"));
    assert!(run_verify(&db).status.success());
}

/// An import killed at any instant leaves no stored write without its entry: every person
/// stored comes from a line that a commit's entry names.
#[test]
fn an_import_killed_midway_has_an_entry_for_everything_it_stored() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("in");
    generate_sized(&data, "5", "300", "4");
    let db = t.path().join("db");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_carerecord"))
        .args([
            "import",
            data.join("people.ndjson").to_str().unwrap(),
            "--operator",
            "carol",
            "--data-dir",
            db.to_str().unwrap(),
            "--metrics-listen",
            "off",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let file = db.join("carerecord.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let query = |sql: &'static str| {
        let file = file.clone();
        rt.block_on(async move {
            use sqlx::Connection;
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&file)
                .read_only(true);
            let mut c = sqlx::sqlite::SqliteConnection::connect_with(&opts)
                .await
                .ok()?;
            let rows: Vec<(String,)> = sqlx::query_as(sql).fetch_all(&mut c).await.ok()?;
            c.close().await.ok()?;
            Some(rows.into_iter().map(|r| r.0).collect::<Vec<_>>())
        })
    };
    // Killed (SIGKILL) as soon as the first commit is visible, while the next is being written.
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(120) {
        let seen = query("SELECT query FROM audit_log WHERE rule = 'import-batch'");
        if seen.is_some_and(|v| !v.is_empty()) || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();

    // The Patients of each line of the file (a merged person's Bundle has two).
    let text = std::fs::read_to_string(data.join("people.ndjson")).unwrap();
    let patients_of_line: Vec<Vec<String>> = text
        .lines()
        .map(|l| {
            let b: serde_json::Value = serde_json::from_str(l).unwrap();
            b["entry"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["resource"]["resourceType"] == "Patient")
                .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
                .collect()
        })
        .collect();
    let everyone: usize = patients_of_line.iter().map(Vec::len).sum();
    let mut covered = std::collections::BTreeSet::new();
    for q in query("SELECT query FROM audit_log WHERE rule = 'import-batch'").unwrap_or_default() {
        let lines = q
            .split(' ')
            .find_map(|p| p.strip_prefix("lines="))
            .unwrap_or_else(|| panic!("{q}"));
        let (a, b) = lines.split_once('-').unwrap();
        for line in a.parse::<usize>().unwrap()..=b.parse().unwrap() {
            covered.extend(patients_of_line[line - 1].iter().cloned());
        }
    }
    let stored: std::collections::BTreeSet<String> =
        query("SELECT id FROM resources WHERE resource_type = 'Patient'")
            .unwrap_or_default()
            .into_iter()
            .collect();
    assert!(!stored.is_empty(), "killed before the first commit");
    assert!(
        stored.len() < everyone,
        "not killed midway: the test proves nothing"
    );
    assert_eq!(
        stored, covered,
        "stored people without an entry, or entries without them"
    );
}
