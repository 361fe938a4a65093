//! The command line, run as a user would: generate, import, and their reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed expectation is a failed test"
)]

#[path = "cli/auth.rs"]
mod auth;
#[path = "cli/crash.rs"]
mod crash;
#[path = "cli/import_audit.rs"]
mod import_audit;
#[path = "cli/mllp_tls.rs"]
mod mllp_tls;

use std::path::Path;
use std::process::Command;

fn carerecord(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_carerecord"))
        .args(args)
        .output()
        .expect("run carerecord")
}

/// A small synthetic London: 12 people, 2 care homes.
fn generate(dir: &Path, seed: &str) {
    generate_sized(dir, seed, "12", "2");
}

fn generate_sized(dir: &Path, seed: &str, patients: &str, care_homes: &str) {
    let out = carerecord(&[
        "generate",
        "--out",
        dir.to_str().unwrap(),
        "--patients",
        patients,
        "--care-homes",
        care_homes,
        "--seed",
        seed,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_same_seed_writes_byte_identical_files_and_another_seed_does_not() {
    let t = tempfile::tempdir().unwrap();
    let (a, b, c) = (t.path().join("a"), t.path().join("b"), t.path().join("c"));
    generate(&a, "7");
    generate(&b, "7");
    generate(&c, "8");
    for f in ["organisations.json", "people.ndjson"] {
        let x = std::fs::read(a.join(f)).unwrap();
        assert_eq!(x, std::fs::read(b.join(f)).unwrap(), "{f}");
        assert!(!x.is_empty());
    }
    assert_ne!(
        std::fs::read(a.join("people.ndjson")).unwrap(),
        std::fs::read(c.join("people.ndjson")).unwrap()
    );
}

#[test]
fn import_reports_refused_lines_keeps_the_good_ones_and_can_be_rerun() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    generate(&data, "1");
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
    let args = [
        "import",
        data.to_str().unwrap(),
        "--data-dir",
        db.to_str().unwrap(),
        "--metrics-listen",
        "off",
    ];
    let first = carerecord(&args);
    assert!(
        !first.status.success(),
        "refusals make the exit code non-zero"
    );
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains("extra.ndjson:1: "), "{stderr}");
    assert!(stderr.contains("Patient.birthDate"), "{stderr}");
    assert!(
        stderr.contains("extra.ndjson:2: not valid JSON"),
        "{stderr}"
    );
    assert!(!stderr.contains("extra.ndjson:3"), "{stderr}");
    let stdout = String::from_utf8_lossy(&first.stdout);
    let accepted = |s: &str| -> u64 {
        s.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap()
    };
    let n = accepted(&stdout);
    assert!(n > 12 * 20, "{stdout}");
    // Rerun: every id is written again, nothing is duplicated or lost.
    let second = carerecord(&args);
    assert_eq!(accepted(&String::from_utf8_lossy(&second.stdout)), n);
}

/// Bundles share one store transaction, written without savepoints; a Bundle refused after
/// part of it was written is left out whole — the transaction is rolled back and the others
/// written again — and the Bundles before and after it are kept.
#[test]
fn a_bundle_refused_midway_leaves_nothing_and_its_neighbours_are_kept() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let put = |id: &str, birth: &str| {
        format!(
            r#"{{"resource":{{"resourceType":"Patient","id":"{id}","birthDate":"{birth}"}},"request":{{"method":"PUT","url":"Patient/{id}"}}}}"#
        )
    };
    let bundle = |entries: &[String]| {
        format!(
            r#"{{"resourceType":"Bundle","type":"transaction","entry":[{}]}}"#,
            entries.join(",")
        )
    };
    let lines = [
        bundle(&[put("kept-a", "1940-01-01"), put("kept-b", "1941-01-01")]),
        // Its first entry is fine and written before the second is refused.
        bundle(&[put("left-out", "1942-01-01"), put("refused", "1942-13-01")]),
        bundle(&[put("kept-c", "1943-01-01")]),
    ];
    std::fs::write(data.join("bundles.ndjson"), lines.join("\n") + "\n").unwrap();
    let db = t.path().join("db");
    let out = carerecord(&[
        "import",
        data.to_str().unwrap(),
        "--data-dir",
        db.to_str().unwrap(),
        "--metrics-listen",
        "off",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bundles.ndjson:2: "), "{stderr}");
    assert!(!stderr.contains("bundles.ndjson:1"), "{stderr}");
    assert!(!stderr.contains("bundles.ndjson:3"), "{stderr}");

    let config = carerecord::config::Config {
        data_dir: db.clone(),
        ..carerecord::config::Config::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = carerecord::open_store(&config).await.unwrap();
        for (id, present) in [
            ("kept-a", true),
            ("kept-b", true),
            ("left-out", false),
            ("refused", false),
            ("kept-c", true),
        ] {
            let found = store
                .read(
                    carerecord_fhir::ResourceType::Patient,
                    &carerecord_fhir::LogicalId::parse(id).unwrap(),
                    &carerecord_access::Visibility::All,
                )
                .await
                .is_ok();
            assert_eq!(found, present, "Patient/{id}");
        }
    });
}

/// A store under `data_dir` holding `n` audit entries, written through the library as the
/// server would.
fn audited_store(data_dir: &Path, n: i64) {
    use carerecord_store::{
        AuditAction, AuditAgent, AuditOutcome, AuditRecord, Channel, PrincipalKind,
    };
    let config = carerecord::config::Config {
        data_dir: data_dir.to_owned(),
        ..carerecord::config::Config::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = carerecord::open_store(&config).await.unwrap();
        let records = (0..n)
            .map(|i| {
                let mut r = AuditRecord::new(
                    1_764_000_000_000_000 + i,
                    AuditAction::Read,
                    AuditOutcome::Allowed,
                    "legitimate-relationship",
                    AuditAgent {
                        kind: PrincipalKind::User,
                        id: "u-1".into(),
                        name: None,
                        role: Some("R8000".into()),
                        organisation_id: None,
                        ods_code: Some("A99999".into()),
                    },
                    Channel::Api,
                );
                r.patient_ids = vec![format!("pat-{i}")];
                r
            })
            .collect();
        store.append_audit(records).await.unwrap();
    });
}

fn verify_args(data_dir: &Path) -> Vec<String> {
    [
        "audit",
        "verify",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--metrics-listen",
        "off",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn run_verify(data_dir: &Path) -> std::process::Output {
    let args = verify_args(data_dir);
    carerecord(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn audit_verify_reports_an_intact_trail_with_its_head() {
    let t = tempfile::tempdir().unwrap();
    audited_store(t.path(), 5);
    let out = run_verify(t.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("audit trail intact: 5 entries"), "{stdout}");
    assert!(stdout.contains("head: entry 5, hash "), "{stdout}");
}

#[test]
fn audit_verify_names_the_changed_entry_of_a_tampered_sqlite_file_and_exits_3() {
    let t = tempfile::tempdir().unwrap();
    audited_store(t.path(), 6);
    let db = t.path().join("carerecord.db");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::sqlite::SqliteConnection::connect_with(
            &sqlx::sqlite::SqliteConnectOptions::new().filename(&db),
        )
        .await
        .unwrap();
        for sql in [
            "DROP TRIGGER audit_log_no_update",
            "UPDATE audit_log SET agent_id = 'u-2' WHERE seq = 3",
        ] {
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
        c.close().await.unwrap();
    });
    let out = run_verify(t.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("entry 3 was changed"), "{stdout}");
}

#[test]
fn audit_verify_without_the_key_fails_and_does_not_create_one() {
    let t = tempfile::tempdir().unwrap();
    audited_store(t.path(), 2);
    std::fs::remove_file(t.path().join("audit.key")).unwrap();
    let out = run_verify(t.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("audit key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!t.path().join("audit.key").exists());
}

fn stdout_of(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn admin_create_prints_a_one_time_password_and_totp_uri_and_refuses_a_second_without_force() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_str().unwrap();
    let first = stdout_of(&carerecord(&[
        "admin",
        "create",
        "--username",
        "a.admin",
        "--name",
        "A Admin",
        "--data-dir",
        dir,
    ]));
    assert!(first.contains("password: "), "{first}");
    assert!(
        first.contains("totp_uri: otpauth://totp/carerecord:a.admin?"),
        "{first}"
    );
    let second = carerecord(&[
        "admin",
        "create",
        "--username",
        "b.admin",
        "--name",
        "B Admin",
        "--data-dir",
        dir,
    ]);
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already exists"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    stdout_of(&carerecord(&[
        "admin",
        "create",
        "--username",
        "b.admin",
        "--name",
        "B Admin",
        "--force",
        "--data-dir",
        dir,
    ]));
}

#[test]
fn user_add_creates_a_user_then_adds_grants_and_refuses_unknown_roles() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_str().unwrap();
    let out = stdout_of(&carerecord(&[
        "user",
        "add",
        "--username",
        "s.nurse",
        "--name",
        "S Nurse",
        "--role",
        "registered-nurse",
        "--org",
        "org-zc0001",
        "--data-dir",
        dir,
    ]));
    assert!(out.contains("totp_secret: "), "{out}");
    let out = stdout_of(&carerecord(&[
        "user",
        "add",
        "--username",
        "s.nurse",
        "--role",
        "registered-nurse",
        "--org",
        "org-zc0002",
        "--data-dir",
        dir,
    ]));
    assert!(
        out.contains("granted registered-nurse at org-zc0002"),
        "{out}"
    );
    let bad = carerecord(&[
        "user",
        "add",
        "--username",
        "x",
        "--name",
        "X",
        "--role",
        "root",
        "--org",
        "o",
        "--data-dir",
        dir,
    ]);
    assert!(!bad.status.success());
    let system = carerecord(&[
        "user",
        "add",
        "--username",
        "y",
        "--name",
        "Y",
        "--role",
        "system",
        "--org",
        "o",
        "--data-dir",
        dir,
    ]);
    assert!(!system.status.success());
}

#[test]
fn client_add_prints_the_secret_once_and_refuses_a_taken_client_id() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_str().unwrap();
    let args = [
        "client",
        "add",
        "--client-id",
        "loader",
        "--role",
        "service",
        "--org",
        "programme",
        "--secret",
        "--data-dir",
        dir,
    ];
    let out = stdout_of(&carerecord(&args));
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .unwrap();
    assert_eq!(secret.len(), 43);
    assert!(!carerecord(&args).status.success());
    let no_credentials = carerecord(&[
        "client",
        "add",
        "--client-id",
        "other",
        "--role",
        "system",
        "--org",
        "o",
        "--data-dir",
        dir,
    ]);
    assert!(!no_credentials.status.success());
    let pem = t.path().join("key.pem");
    std::fs::write(&pem, "not a key").unwrap();
    let bad_key = carerecord(&[
        "client",
        "add",
        "--client-id",
        "other",
        "--role",
        "system",
        "--org",
        "o",
        "--public-key-pem",
        pem.to_str().unwrap(),
        "--data-dir",
        dir,
    ]);
    assert!(!bad_key.status.success());
}

#[test]
fn audit_verify_with_a_recorded_anchor_finds_the_newest_entries_removed() {
    let t = tempfile::tempdir().unwrap();
    audited_store(t.path(), 4);
    let first = run_verify(t.path());
    let stdout = String::from_utf8_lossy(&first.stdout).into_owned();
    let anchor = stdout
        .split("(anchor: ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or_else(|| panic!("no anchor in {stdout}"))
        .to_owned();
    assert!(anchor.starts_with("4:"), "{anchor}");

    let db = t.path().join("carerecord.db");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::sqlite::SqliteConnection::connect_with(
            &sqlx::sqlite::SqliteConnectOptions::new().filename(&db),
        )
        .await
        .unwrap();
        for sql in [
            "DROP TRIGGER audit_log_no_delete",
            "DELETE FROM audit_log WHERE seq = 4",
        ] {
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
        c.close().await.unwrap();
    });
    let plain = run_verify(t.path());
    assert!(
        plain.status.success(),
        "without an anchor the shorter chain is valid"
    );
    let mut args = verify_args(t.path());
    args.extend(["--anchor".to_owned(), anchor]);
    let out = carerecord(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("entry 4 was deleted"), "{stdout}");
}

/// Imports one person's record into a fresh store under `db`, with `config` (a TOML file) if
/// given, and searches their Conditions as a nurse of the care home they live in: returns the
/// ids shown and how many were withheld as sensitive.
fn conditions_seen_by_the_home(t: &Path, db: &str, config: Option<&Path>) -> (Vec<String>, u64) {
    let data = t.join(format!("{db}-in"));
    std::fs::create_dir_all(&data).unwrap();
    let tag = r#""meta":{"tag":[{"system":"https://fhir.carerecord.example/CodeSystem/source-organisation","code":"ZGP001"}]}"#;
    let condition = |id: &str, code: &str| {
        format!(
            r#"{{"resourceType":"Condition","id":"{id}",{tag},"code":{{"coding":[{{"system":"http://snomed.info/sct","code":"{code}"}}]}},"subject":{{"reference":"Patient/p-cl"}}}}"#
        )
    };
    let lines = [
        format!(r#"{{"resourceType":"Patient","id":"p-cl",{tag}}}"#),
        format!(
            r#"{{"resourceType":"EpisodeOfCare","id":"eoc-cl",{tag},"status":"active","patient":{{"reference":"Patient/p-cl"}},"managingOrganization":{{"reference":"Organization/org-home"}},"period":{{"start":"2025-01-01"}}}}"#
        ),
        condition("c-local", "1234567001"),
        condition("c-hiv", "86406008"),
    ];
    std::fs::write(data.join("records.ndjson"), lines.join("\n") + "\n").unwrap();
    let db = t.join(db);
    let mut args = vec![
        "import".to_owned(),
        data.to_str().unwrap().to_owned(),
        "--data-dir".to_owned(),
        db.to_str().unwrap().to_owned(),
        "--metrics-listen".to_owned(),
        "off".to_owned(),
    ];
    if let Some(c) = config {
        args.extend(["--config".to_owned(), c.to_str().unwrap().to_owned()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = carerecord(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use carerecord_access::{Scope, Visibility};
        use carerecord_store::ResourceStore as _;
        let store = carerecord_store_sqlite::SqliteStore::open(&db.join("carerecord.db"))
            .await
            .unwrap();
        let now = carerecord_store::now_micros();
        let nurse = Visibility::Scoped(Scope {
            org_id: "org-home".into(),
            org_ods: "ZHOME1".into(),
            principal_key: "user:rn@org-home".into(),
            types: None,
            latest_discharge_only: false,
            now,
            encounter_cutoff: now,
            patient: None,
            known: None,
        });
        let found = store
            .everything(
                &carerecord_fhir::LogicalId::parse("p-cl").unwrap(),
                None,
                &[carerecord_fhir::ResourceType::Condition],
                50,
                None,
                &nurse,
            )
            .await
            .unwrap();
        let ids = found
            .items
            .iter()
            .map(|r| r.id.as_str().to_owned())
            .collect();
        (ids, found.withheld)
    })
}

#[test]
fn a_configured_sensitive_code_list_changes_what_is_withheld() {
    let t = tempfile::tempdir().unwrap();
    // The default list withholds the HIV diagnosis and shares the local code.
    assert_eq!(
        conditions_seen_by_the_home(t.path(), "default", None),
        (vec!["c-local".to_owned()], 1)
    );
    // A deployment's list (a file, as its terminology service exports it) replaces it.
    let codes = t.path().join("sensitive.txt");
    std::fs::write(&codes, "# local sensitive codes\n1234567001\n").unwrap();
    let config = t.path().join("carerecord.toml");
    std::fs::write(
        &config,
        format!(
            "[policy]\nsensitive_snomed_file = {:?}\n",
            codes.to_str().unwrap()
        ),
    )
    .unwrap();
    assert_eq!(
        conditions_seen_by_the_home(t.path(), "custom", Some(&config)),
        (vec!["c-hiv".to_owned()], 1)
    );
    // `config check` reads and validates the list; a bad code stops it, naming the line.
    let ok = carerecord(&["config", "check", "--config", config.to_str().unwrap()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    std::fs::write(&codes, "1234567001\nnot-a-code\n").unwrap();
    let bad = carerecord(&["config", "check", "--config", config.to_str().unwrap()]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("sensitive.txt:2"), "{err}");
}
