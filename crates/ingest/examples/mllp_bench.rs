//! HL7 v2 over MLLP throughput: messages per second with their ACKs, on a fresh SQLite store,
//! through the real listener on 127.0.0.1:0 (`docs/benchmarks.md`, "HL7 v2 over MLLP").
//!
//! `cargo run --release -p carerecord-ingest --example mllp_bench -- [people] [messages]`
//!
//! First every person is registered (ADT^A28, verified NHS number), then ORU^R01 results
//! (one report, five observations each) are streamed over 1 and 8 connections, each keeping
//! a window of messages in flight, and over 8 connections waiting for every ACK before the
//! next message (HL7 original mode).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark"
)]

use std::sync::Arc;
use std::time::Instant;

use carerecord_fhir::ResourceType;
use carerecord_fhir::nhs_number::check_digit;
use carerecord_ingest::pipeline::Pipeline;
use carerecord_store::{AuditKey, ResourceStore, write};
use carerecord_store_sqlite::SqliteStore;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// The allocator the `carerecord` binary ships with (its default `mimalloc` feature), so the
// figures are the binary's and not glibc's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const OBX_PER_ORU: usize = 5;

fn nhs_numbers(n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0u32;
    while out.len() < n {
        i += 1;
        let body = format!("999{i:06}");
        let digits: Vec<u32> = body.chars().filter_map(|c| c.to_digit(10)).collect();
        if let Some(c) = check_digit(&digits) {
            out.push(format!("{body}{c}"));
        }
    }
    out
}

/// Person `n`'s birth date: spread over sixty years, as a care home's residents' are. (With one
/// date for everyone, every registered person was a demographic candidate for every new one,
/// and registration measured reading them all.)
fn birth_date(n: usize) -> String {
    format!(
        "{:04}{:02}{:02}",
        1925 + n % 60,
        1 + (n / 60) % 12,
        1 + (n / 720) % 28
    )
}

fn a28(nhs: &str, n: usize) -> Vec<u8> {
    let born = birth_date(n);
    format!(
        "MSH|^~\\&|PAS|ZRH01|CARERECORD|ZCR01|20261125090000||ADT^A28^ADT_A05|REG{n}|P|2.4\r\
         EVN|A28|20261125090000\r\
         PID|1||{nhs}^^^NHS^NH~RX{n:07}^^^ZRH01^MR||BENCH^PERSON{n}||{born}|F|||1 TEST ROAD^^LONDON^^SE1 9ZZ^GBR^H|||||||||||||||||||||NSTS01\r"
    )
    .into_bytes()
}

/// Result `n` for person `person` (its NHS number and birth date match the registration).
fn oru(nhs: &str, person: usize, tag: &str, n: usize) -> Vec<u8> {
    let born = birth_date(person);
    let mut m = format!(
        "MSH|^~\\&|WINPATH|ZLB01|CARERECORD|ZCR01|20261125110500||ORU^R01^ORU_R01|{tag}{n}|P|2.4\r\
         PID|1||{nhs}^^^NHS^NH||BENCH^PERSON||{born}|F\r\
         ORC|RE|PL{tag}{n}|FL{tag}{n}\r\
         OBR|1|PL{tag}{n}|FL{tag}{n}|UE^Urea and electrolytes^WINPATH|||20261125083000|||||||||||||||20261125110000||CH|F\r"
    );
    for i in 1..=OBX_PER_ORU {
        m.push_str(&format!(
            "OBX|{i}|NM|2951-{i}^Analyte {i}^LN||{}.{}|mmol/L|133-146|N|||F|||20261125083000\r",
            130 + i,
            n % 10
        ));
    }
    m.into_bytes()
}

fn frame(m: &[u8]) -> Vec<u8> {
    let mut f = vec![0x0B];
    f.extend_from_slice(m);
    f.extend_from_slice(&[0x1C, 0x0D]);
    f
}

async fn read_ack(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Vec<u8> {
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == [0x1C, 0x0D]) {
            let ack = buf[1..end].to_vec();
            buf.drain(..end + 2);
            return ack;
        }
        let mut chunk = [0u8; 8192];
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// CPU seconds this process has used (user + system), from `/proc/self/stat`: on a shared
/// machine the CPU a message costs is steadier than the wall-clock rate. 0 where unavailable.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| f.get(*i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

fn accepted(ack: &[u8]) -> bool {
    String::from_utf8_lossy(ack).contains("MSA|AA|")
}

/// Sends `messages` over `conns` connections; `window` messages in flight per connection.
async fn run(
    addr: std::net::SocketAddr,
    messages: Vec<Vec<u8>>,
    conns: usize,
    window: usize,
) -> (usize, f64, f64) {
    let per: Vec<Vec<Vec<u8>>> = (0..conns)
        .map(|c| messages.iter().skip(c).step_by(conns).cloned().collect())
        .collect();
    let start = Instant::now();
    let cpu = cpu_seconds();
    let mut tasks = Vec::new();
    for msgs in per {
        tasks.push(tokio::spawn(async move {
            let mut conn = TcpStream::connect(addr).await.unwrap();
            conn.set_nodelay(true).unwrap();
            let mut buf = Vec::new();
            let mut sent = 0;
            let mut acked = 0;
            let mut ok = 0;
            while acked < msgs.len() {
                while sent < msgs.len() && sent - acked < window {
                    conn.write_all(&frame(&msgs[sent])).await.unwrap();
                    sent += 1;
                }
                let ack = read_ack(&mut conn, &mut buf).await;
                acked += 1;
                ok += usize::from(accepted(&ack));
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    (ok, start.elapsed().as_secs_f64(), cpu_seconds() - cpu)
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let people = args.first().copied().unwrap_or(1_000);
    let per_run = args.get(1).copied().unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ResourceStore> = Arc::new(
        SqliteStore::open(&dir.path().join("bench.db"))
            .await
            .unwrap()
            .with_audit_key(AuditKey::new(b"carerecord-ingest-bench-key-001!").unwrap()),
    );
    let mut tx = store.begin().await.unwrap();
    for (id, ods) in [("org-zrh01", "ZRH01"), ("org-zlb01", "ZLB01")] {
        write::update(
            tx.as_mut(),
            ResourceType::Organization,
            &carerecord_fhir::LogicalId::parse(id).unwrap(),
            json!({"resourceType": "Organization", "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": ods}]}),
            None,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    carerecord_ingest::systems::add(store.as_ref(), "PAS", "org-zrh01", "PAS", "ZRH01")
        .await
        .unwrap();
    carerecord_ingest::systems::add(store.as_ref(), "LIMS", "org-zlb01", "WINPATH", "ZLB01")
        .await
        .unwrap();
    let pipeline = Pipeline::start(store.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(carerecord_ingest::mllp::serve(
        listener,
        pipeline,
        None,
        std::future::pending(),
    ));

    let nhs = nhs_numbers(people);
    let regs: Vec<Vec<u8>> = nhs.iter().enumerate().map(|(i, n)| a28(n, i)).collect();
    let (ok, secs, cpu) = run(addr, regs, 8, 32).await;
    println!(
        "ADT^A28 (new people), 8 connections x 32 in flight: {ok}/{people} AA in {secs:.2} s = {:.0} msg/s, {:.0} µs CPU/msg",
        ok as f64 / secs,
        cpu * 1e6 / ok.max(1) as f64
    );

    for (label, tag, conns, window) in [
        ("1 connection, 64 in flight", "A", 1, 64),
        ("8 connections, 32 in flight each", "B", 8, 32),
        ("8 connections, waiting for each ACK", "C", 8, 1),
    ] {
        let n = if window == 1 { per_run / 4 } else { per_run };
        let msgs: Vec<Vec<u8>> = (0..n)
            .map(|i| oru(&nhs[i % people], i % people, tag, i))
            .collect();
        let (ok, secs, cpu) = run(addr, msgs, conns, window).await;
        println!(
            "ORU^R01 ({OBX_PER_ORU} OBX), {label}: {ok}/{n} AA in {secs:.2} s = {:.0} msg/s, {:.0} observations/s, {:.0} µs CPU/msg",
            ok as f64 / secs,
            (ok * OBX_PER_ORU) as f64 / secs,
            cpu * 1e6 / ok.max(1) as f64
        );
    }
}
