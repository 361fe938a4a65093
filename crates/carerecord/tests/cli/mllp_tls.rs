//! `serve` with MLLP over TLS: unusable TLS settings stop it with a message naming the file
//! (never half-started); the key without the certificate is a usage error.

use std::path::PathBuf;
use std::process::Command;

fn tls_file(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../ingest/tests/fixtures/tls")
        .join(name)
        .display()
        .to_string()
}

fn serve(extra: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().display().to_string();
    let mut args = vec![
        "serve",
        "--data-dir",
        &data_dir,
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "off",
        "--mllp-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_carerecord"))
        .args(&args)
        .output()
        .unwrap()
}

#[test]
fn serve_refuses_an_unreadable_mllp_tls_key_naming_the_file() {
    let cert = tls_file("server.pem");
    let key = tls_file("no-such-key.pem");
    let out = serve(&["--mllp-tls-cert", &cert, "--mllp-tls-key", &key]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-key.pem"), "{stderr}");
    assert!(stderr.contains("MLLP over TLS"), "{stderr}");
}

#[test]
fn a_tls_key_without_a_certificate_is_a_usage_error() {
    let key = tls_file("server.key");
    let out = serve(&["--mllp-tls-key", &key]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--mllp-tls-cert"), "{stderr}");
}
