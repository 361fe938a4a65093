//! Writes a synthetic London as NDJSON, one file per resource type, for checking with other
//! tools (e.g. `tests/conformance/check_synth_with_fhir_resources.py`).
//!
//! `cargo run -p carerecord-synth --example dump -- <dir> [patients] [care homes] [seed]`
//!
//! Also writes the awkward cases' transaction Bundles as `Bundle-<patient id>.json`.

use carerecord_synth::{London, Options};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = std::path::PathBuf::from(args.first().map_or("synth-out", String::as_str));
    let d = Options::default();
    let num = |k: usize, default: u64| -> Result<u64, std::num::ParseIntError> {
        args.get(k).map_or(Ok(default), |s| s.parse())
    };
    let opts = Options {
        patients: u32::try_from(num(1, u64::from(d.patients))?)?,
        care_homes: u32::try_from(num(2, u64::from(d.care_homes))?)?,
        seed: num(3, d.seed)?,
        ..d
    };
    std::fs::create_dir_all(&dir)?;
    let london = London::new(&opts);
    let mut files: BTreeMap<String, std::io::BufWriter<std::fs::File>> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut write = |r: &Value| -> std::io::Result<()> {
        let rt = r["resourceType"].as_str().unwrap_or("Unknown").to_owned();
        if !files.contains_key(&rt) {
            let f = std::fs::File::create(dir.join(format!("{rt}.ndjson")))?;
            files.insert(rt.clone(), std::io::BufWriter::new(f));
        }
        if let Some(f) = files.get_mut(&rt) {
            writeln!(f, "{r}")?;
        }
        *counts.entry(rt).or_default() += 1;
        Ok(())
    };
    for o in london.organisations() {
        write(&o)?;
    }
    for i in 0..london.people() {
        let b = london.person_bundle(i);
        for e in b["entry"].as_array().into_iter().flatten() {
            write(&e["resource"])?;
        }
    }
    for f in files.values_mut() {
        f.flush()?;
    }
    for (rt, n) in &counts {
        println!("{rt}\t{n}");
    }
    println!("total\t{}", counts.values().sum::<usize>());
    // The awkward cases' whole transaction Bundles too, to check them as Bundles.
    for (what, id) in london.awkward_cases() {
        println!("awkward\t{id}\t{what}");
        let i: u32 = id.trim_start_matches("pat-").parse()?;
        let path = dir.join(format!("Bundle-{id}.json"));
        std::fs::write(path, london.person_bundle(i).to_string())?;
    }
    Ok(())
}
