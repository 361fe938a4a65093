//! Runs the validator over FHIR R4 specification examples (CC0, npm `hl7.fhir.r4.examples`).
//!
//! `fixtures/` holds a few copies that always run. The whole package is used too when it has
//! been unpacked at `/tmp/fhirpkg/package` (or `$FHIR_EXAMPLES_DIR`); otherwise that test is a
//! no-op.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use carerecord_fhir::validate::validate;
use carerecord_fhir::{IssueCode, ResourceType};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn load(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn is_supported(v: &Value) -> bool {
    v.get("resourceType")
        .and_then(Value::as_str)
        .is_some_and(|t| t.parse::<ResourceType>().is_ok())
}

/// Whether every resource nested in `v` (contained, Bundle entries) is of a supported type.
fn only_supported_nested(v: &Value) -> bool {
    match v {
        Value::Object(obj) => {
            if obj.contains_key("resourceType") && !is_supported(v) {
                return false;
            }
            obj.values().all(only_supported_nested)
        }
        Value::Array(items) => items.iter().all(only_supported_nested),
        _ => true,
    }
}

#[test]
fn fixture_examples_are_valid() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let resource = load(&path).unwrap();
        let issues = validate(&resource);
        assert!(issues.is_empty(), "{}: {issues:#?}", path.display());
        // And the validator is not simply accepting everything: one unknown element, one issue.
        let mut broken = resource.clone();
        broken["notAnElement"] = Value::Bool(true);
        let issues = validate(&broken);
        let rt = resource["resourceType"].as_str().unwrap();
        assert_eq!(issues.len(), 1, "{}: {issues:#?}", path.display());
        assert_eq!(issues[0].code, IssueCode::Structure);
        assert_eq!(issues[0].expression, vec![format!("{rt}.notAnElement")]);
        count += 1;
    }
    assert!(count >= 5, "expected at least 5 fixtures, found {count}");
}

#[test]
fn spec_examples_of_supported_types_pass() {
    let dir = std::env::var_os("FHIR_EXAMPLES_DIR")
        .map_or_else(|| PathBuf::from("/tmp/fhirpkg/package"), PathBuf::from);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return; // package not unpacked here: nothing to check
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .collect();
    paths.sort();

    let (mut in_scope, mut passed, mut out_of_scope, mut out_of_scope_rejected) = (0, 0, 0, 0);
    for path in &paths {
        let Some(resource) = load(path) else { continue };
        if !is_supported(&resource) {
            continue;
        }
        let issues = validate(&resource);
        let name = path.file_name().unwrap().to_string_lossy();
        if !only_supported_nested(&resource) {
            // Contains resources (Bundle entries or contained) of types this server does not
            // store: rejecting them is policy, not a validator fault.
            out_of_scope += 1;
            if issues
                .iter()
                .any(|i| i.code == IssueCode::Invalid && i.diagnostics.contains("is not supported"))
            {
                out_of_scope_rejected += 1;
            }
            continue;
        }
        in_scope += 1;
        if issues.is_empty() {
            passed += 1;
        } else {
            println!("FAIL {name}:");
            for i in issues.iter().take(5) {
                println!("    {:?} {:?}: {}", i.code, i.expression, i.diagnostics);
            }
        }
    }
    if in_scope == 0 {
        return;
    }
    let rate = f64::from(passed) / f64::from(in_scope);
    println!(
        "spec examples: {passed}/{in_scope} in scope pass ({:.1}%); {out_of_scope} out of scope (unsupported nested types), {out_of_scope_rejected} of them rejected as unsupported",
        rate * 100.0
    );
    assert_eq!(out_of_scope, out_of_scope_rejected);
    assert!(rate >= 0.95, "pass rate {rate:.3} is below 95%");
}
