//! The command line, run as a user would: generate, import, and their reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed expectation is a failed test"
)]

use std::path::Path;
use std::process::Command;

fn carerecord(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_carerecord"))
        .args(args)
        .output()
        .expect("run carerecord")
}

fn generate(dir: &Path, seed: &str) {
    let out = carerecord(&[
        "generate",
        "--out",
        dir.to_str().unwrap(),
        "--patients",
        "12",
        "--care-homes",
        "2",
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
