//! `carerecord generate`: the synthetic London as files.
//!
//! `organisations.json` is one transaction Bundle of the ICSs, practices, trusts, lab and care
//! homes; `people.ndjson` holds one transaction Bundle per person, one per line, written as it is
//! generated so that any number of people fits in memory. Every entry is a `PUT` with a stable
//! id, so importing the files twice changes nothing but version numbers.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use carerecord_synth::{London, Options};
use serde_json::{Value, json};

/// The organisations as a transaction Bundle of `PUT` entries.
pub fn organisations_bundle(london: &London) -> Value {
    let entries: Vec<Value> = london
        .organisations()
        .into_iter()
        .map(|r| {
            let url = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap_or(""),
                r["id"].as_str().unwrap_or("")
            );
            json!({"resource": r, "request": {"method": "PUT", "url": url}})
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

pub struct Generated {
    pub people: u32,
    pub resources: u64,
    pub elapsed: Duration,
}

/// Writes the data set into `out` (created if needed).
pub fn write(opts: &Options, out: &Path, mut tick: impl FnMut(u32)) -> anyhow::Result<Generated> {
    let started = Instant::now();
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let london = London::new(opts);
    let orgs = organisations_bundle(&london);
    let mut resources = orgs["entry"].as_array().map_or(0, Vec::len) as u64;
    let path = out.join("organisations.json");
    std::fs::write(&path, serde_json::to_vec(&orgs)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let path = out.join("people.ndjson");
    let file =
        std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut w = BufWriter::new(file);
    for i in 0..london.people() {
        let b = london.person_bundle(i);
        resources += b["entry"].as_array().map_or(0, Vec::len) as u64;
        serde_json::to_writer(&mut w, &b)?;
        w.write_all(b"\n")?;
        tick(i + 1);
    }
    w.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Generated {
        people: london.people(),
        resources,
        elapsed: started.elapsed(),
    })
}
