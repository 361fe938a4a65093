//! Parse + map of an ORU^R01 with 20 OBX (the size of a typical lab report) and of an ADT^A01,
//! and building an ACK.
//! `cargo bench -p carerecord-hl7`; messages/s = 1 / time per iteration.
#![allow(clippy::expect_used, reason = "benchmark setup fails loudly")]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use carerecord_hl7::map::{MapContext, map};
use carerecord_hl7::{AckCode, ack, parse};

fn oru_with_20_obx() -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/oru_r01_500_obx.hl7",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = String::from_utf8(std::fs::read(path).expect("fixture")).expect("ascii");
    let mut out = String::new();
    let mut obx = 0;
    for seg in text.split('\r').filter(|s| !s.is_empty()) {
        if seg.starts_with("OBX") {
            obx += 1;
            if obx > 20 {
                break;
            }
        }
        out.push_str(seg);
        out.push('\r');
    }
    out.into_bytes()
}

fn bench(c: &mut Criterion) {
    let bytes = oru_with_20_obx();
    let ctx = MapContext {
        sender_ods: "ZLB01".into(),
        sender_system: "ZLB01 LIMS".into(),
        received_at: time::OffsetDateTime::UNIX_EPOCH,
        message_id: "bench".into(),
    };
    let mut g = c.benchmark_group("hl7");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_oru_20_obx", |b| {
        b.iter(|| parse(black_box(&bytes)).expect("parses"))
    });
    g.bench_function("parse_map_oru_20_obx", |b| {
        b.iter(|| {
            let m = parse(black_box(&bytes)).expect("parses");
            map(&m, &ctx).expect("maps")
        })
    });
    let adt = std::fs::read(format!(
        "{}/tests/fixtures/adt_a01_admit.hl7",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture");
    let adt_ctx = MapContext {
        sender_ods: "ZRH01".into(),
        ..ctx.clone()
    };
    g.bench_function("parse_map_adt_a01", |b| {
        b.iter(|| {
            let m = parse(black_box(&adt)).expect("parses");
            map(&m, &adt_ctx).expect("maps")
        })
    });
    let header = parse(&bytes).expect("parses").header().clone();
    g.bench_function("ack", |b| {
        b.iter(|| {
            ack(
                black_box(&header),
                AckCode::AA,
                &[],
                "ACK1",
                "20260101000000+0000",
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
