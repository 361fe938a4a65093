//! In-process import into SQLite through the store API: one store transaction per generated
//! Bundle (`begin`, a `write::create`/`create_new` per resource, `commit`), with ids assigned
//! and `urn:uuid:` references rewritten as the server does, and each resource validated.
//! Throughput is in resources per second. The store grows across iterations (it starts empty).
//!
//! `cargo bench -p carerecord-bench --bench import`

use std::sync::Arc;
use std::time::{Duration, Instant};

use carerecord_bench::inprocess::{Write, import_bundle};
use carerecord_bench::synth;
use carerecord_store::ResourceStore;
use carerecord_store_sqlite::SqliteStore;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn sqlite_import(c: &mut Criterion) {
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    else {
        eprintln!("no tokio runtime");
        return;
    };
    // Resources per Bundle vary (35–43); report the mean for throughput.
    let sample: usize = (0..100).map(|i| synth::record(1, i).resource_count()).sum();
    let per_bundle = sample as u64 / 100;
    let mut g = c.benchmark_group("import_sqlite");
    g.throughput(Throughput::Elements(per_bundle));
    for (name, how, validate) in [
        ("bundle_create_new_validated", Write::CreateNew, true),
        ("bundle_create_validated", Write::Create, true),
        ("bundle_create_new_unvalidated", Write::CreateNew, false),
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
        let mut next = 0u64;
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let records: Vec<_> = (0..iters)
                    .map(|i| synth::record(1, next + i).bundle)
                    .collect();
                next += iters;
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
