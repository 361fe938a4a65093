//! The record page's server-side work for a person with 2,000 resources: `RecordView::build`
//! and `render` of every section (the portal renders one section per request, so this is an
//! upper bound), and `badges` over the same resources.
//! `cargo bench -p carerecord-record --bench record`.
//!
//! Before criterion runs, the bench times 200 whole pages and prints p50/p99, the figure the
//! portal's target (p99 ≤ 100 ms for the whole page) is stated in (`RECORD_PERCENTILES=0` skips
//! it).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use carerecord_access::View;
use carerecord_record::{RecordInput, RecordView, Section, badges};
use carerecord_synth::{London, ODS_SYSTEM, Options};
use criterion::{Criterion, criterion_group};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

/// No source with an HL7 v2 feed.
static NO_FEEDS: std::sync::LazyLock<HashMap<String, OffsetDateTime>> =
    std::sync::LazyLock::new(HashMap::new);

const NOW: OffsetDateTime = datetime!(2026-11-01 12:00 UTC);
const TARGET: usize = 2_000;

struct Person {
    patient: Value,
    resources: Vec<Value>,
    organisations: HashMap<String, String>,
}

/// The person with the largest synthetic record, grown to 2,000 resources with more of their
/// own lab results (the type that dominates a long record), each a new id a week further back.
fn person() -> Person {
    let london = London::new(&Options {
        seed: 42,
        patients: 200,
        care_homes: 6,
        ..Options::default()
    });
    let organisations = london
        .organisations()
        .iter()
        .filter_map(|o| {
            let ods = o["identifier"]
                .as_array()?
                .iter()
                .find(|i| i["system"] == ODS_SYSTEM)?["value"]
                .as_str()?;
            Some((ods.to_owned(), o["name"].as_str()?.to_owned()))
        })
        .collect();
    let (i, _) = (0..london.people())
        .map(|i| {
            (
                i,
                london.person_bundle(i)["entry"]
                    .as_array()
                    .map_or(0, Vec::len),
            )
        })
        .max_by_key(|(_, n)| *n)
        .unwrap_or((0, 0));
    let bundle = london.person_bundle(i);
    let mut resources: Vec<Value> = bundle["entry"]
        .as_array()
        .map(|a| a.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default();
    let pid = London::patient_id(i);
    let patient = resources
        .iter()
        .find(|r| r["resourceType"] == "Patient" && r["id"] == pid.as_str())
        .cloned()
        .unwrap_or_else(|| json!({"resourceType": "Patient", "id": pid}));
    let labs: Vec<Value> = resources
        .iter()
        .filter(|r| r["resourceType"] == "Observation")
        .cloned()
        .collect();
    let mut week = 0i64;
    while resources.len() < TARGET && !labs.is_empty() {
        week += 1;
        for (k, o) in labs.iter().enumerate() {
            if resources.len() >= TARGET {
                break;
            }
            let mut o = o.clone();
            o["id"] = json!(format!("{pid}-bench-{week}-{k}"));
            let when = NOW - time::Duration::weeks(week);
            let date = format!(
                "{:04}-{:02}-{:02}T09:00:00Z",
                when.year(),
                u8::from(when.month()),
                when.day()
            );
            o["effectiveDateTime"] = json!(date);
            o["issued"] = json!(date);
            resources.push(o);
        }
    }
    Person {
        patient,
        resources,
        organisations,
    }
}

fn page(p: &Person, view: View) -> usize {
    let v = RecordView::build(RecordInput {
        patient: &p.patient,
        resources: &p.resources,
        organisations: &p.organisations,
        feeds: &NO_FEEDS,
        now: NOW,
        view,
        withheld: 0,
        sources_only: &[],
    });
    Section::all().iter().map(|s| v.render(*s).len()).sum()
}

fn percentiles(p: &Person) {
    let mut times: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            black_box(page(p, View::Full));
            t.elapsed()
        })
        .collect();
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    eprintln!(
        "record page, {} resources, full view, build + all 8 sections ({} bytes of HTML): p50 {:?}, p99 {:?}, max {:?}",
        p.resources.len(),
        page(p, View::Full),
        at(0.50),
        at(0.99),
        times[times.len() - 1]
    );
}

fn benches(c: &mut Criterion) {
    let p = person();
    let mut g = c.benchmark_group("record");
    g.sample_size(50);
    g.bench_function("build_and_render_all_sections_2000_full", |b| {
        b.iter(|| black_box(page(&p, View::Full)))
    });
    g.bench_function("build_and_render_all_sections_2000_restricted", |b| {
        b.iter(|| black_box(page(&p, View::Restricted)))
    });
    g.bench_function("build_and_render_summary_only_2000_full", |b| {
        b.iter(|| {
            let v = RecordView::build_for(
                RecordInput {
                    patient: &p.patient,
                    resources: &p.resources,
                    organisations: &p.organisations,
                    feeds: &NO_FEEDS,
                    now: NOW,
                    view: View::Full,
                    withheld: 0,
                    sources_only: &[],
                },
                &[Section::Summary],
            );
            black_box(v.render(Section::Summary).len())
        })
    });
    g.bench_function("badges_2000", |b| {
        b.iter(|| black_box(badges(black_box(&p.resources), NOW)))
    });
    g.finish();
}

criterion_group!(record, benches);

fn main() {
    // `RECORD_PERCENTILES=0` skips the percentile run (e.g. when profiling one bench).
    if std::env::var("RECORD_PERCENTILES").as_deref() != Ok("0") {
        percentiles(&person());
    }
    record();
    Criterion::default().configure_from_args().final_summary();
}
