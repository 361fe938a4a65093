//! In-process import into SQLite through the store API: one store transaction per person's
//! generated Bundle (`begin`, a `write::create`/`create_new` per resource under the id of its
//! `PUT` entry, `commit`), each resource validated unless the name says otherwise. Throughput is
//! in resources per second. The store grows across iterations; it starts with the London's
//! organisations (loaded untimed) and no people.
//!
//! `cargo bench -p carerecord-bench --bench import`

use std::sync::Arc;
use std::time::{Duration, Instant};

use carerecord_bench::data;
use carerecord_bench::inprocess::{Write, import_bundle};
use carerecord_store::ResourceStore;
use carerecord_store_sqlite::SqliteStore;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// People in the generated London: more than the iterations of a run.
const PEOPLE: u32 = 20_000;

fn sqlite_import(c: &mut Criterion) {
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    else {
        eprintln!("no tokio runtime");
        return;
    };
    // Enough people for every iteration criterion makes (each imports a new one).
    let london = data::london(1, PEOPLE);
    let organisations = data::organisation_bundles(&london);
    // Resources per Bundle vary with the person; report the mean for throughput.
    let sample: usize = (0..100)
        .map(|i| data::resource_count(&london.person_bundle(i)))
        .sum();
    let per_bundle = sample as u64 / 100;
    let mut g = c.benchmark_group("import_sqlite");
    g.throughput(Throughput::Elements(per_bundle));
    for (name, how, validate) in [
        ("bundle_create_new_validated", Write::CreateNew, true),
        ("bundle_create_validated", Write::Create, true),
        ("bundle_create_new_unvalidated", Write::CreateNew, false),
        ("bundle_update_validated", Write::Update, true),
        ("bundle_batched_validated", Write::Batched, true),
    ] {
        let Ok(dir) = tempfile::tempdir() else {
            return;
        };
        let store = match rt.block_on(SqliteStore::open(&dir.path().join("bench.db"))) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                eprintln!("open sqlite: {e}");
                return;
            }
        };
        let loaded = rt.block_on(async {
            for b in &organisations {
                import_bundle(store.as_ref(), b, false, Write::CreateNew).await?;
            }
            anyhow::Ok(())
        });
        if let Err(e) = loaded {
            eprintln!("loading the organisations failed: {e:#}");
            return;
        }
        let mut next = 0u32;
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let iters = u32::try_from(iters).unwrap_or(u32::MAX);
                if next.saturating_add(iters) > london.people() {
                    eprintln!("more iterations than the {PEOPLE} people generated");
                }
                let records: Vec<_> = (0..iters)
                    .map(|i| london.person_bundle(next.saturating_add(i)))
                    .collect();
                next = next.saturating_add(iters);
                let store: &dyn ResourceStore = store.as_ref();
                let start = Instant::now();
                rt.block_on(async {
                    for r in &records {
                        if let Err(e) = import_bundle(store, r, validate, how).await {
                            eprintln!("import failed: {e}");
                        }
                    }
                });
                start.elapsed()
            })
        });
        rt.block_on(store.close());
        drop(dir);
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}

criterion_group! {
    name = benches;
    config = config();
    targets = sqlite_import
}
criterion_main!(benches);
