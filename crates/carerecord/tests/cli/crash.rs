//! Nothing lost: the real `carerecord serve` is killed with SIGKILL (twice, at random points)
//! while senders stream HL7 v2 over several MLLP connections; after each kill the data
//! directory is checked — every acknowledged message is stored exactly once, by the message
//! log and by the resources it carried, and every other message is there whole or not at all
//! — and the server is restarted on the same directory and sent everything not acknowledged.
#![allow(
    clippy::panic,
    reason = "test code: a failed expectation is a failed test"
)]

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use carerecord_fhir::ResourceType;
use carerecord_store::ingest;
use serde_json::Value;

/// Messages streamed in all: results (a DiagnosticReport pair and their Observations) and
/// new people (a Patient) alternately.
const MESSAGES: usize = 240;
const CONNECTIONS: usize = 4;
/// Messages a sender keeps in flight on one connection.
const WINDOW: usize = 8;
const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";
const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../hl7/tests/fixtures")
        .join(format!("{name}.hl7"));
    String::from_utf8(std::fs::read(&p).unwrap()).unwrap()
}

/// A synthetic NHS number (999 range) with a valid Modulus 11 check digit.
fn nhs_number(n: usize) -> String {
    let mut k = n;
    loop {
        let body = format!("999{:06}", 100_000 + k);
        let sum: u32 = body
            .bytes()
            .zip((2..=10).rev())
            .map(|(b, w)| u32::from(b - b'0') * w)
            .sum();
        let check = match 11 - sum % 11 {
            11 => 0,
            10 => {
                k += 10_000;
                continue;
            }
            c => c,
        };
        return format!("{body}{check}");
    }
}

/// A letters-only name part for `n` (names with digits are not names).
fn letters(mut n: usize) -> String {
    let mut s = String::new();
    for _ in 0..3 {
        s.push(char::from(b'A' + (n % 26) as u8));
        n /= 26;
    }
    s
}

enum Carries {
    /// The filler order numbers of the message's two reports.
    Results([String; 2]),
    /// The NHS number of the person added.
    Person(String),
}

struct Message {
    control_id: String,
    bytes: Vec<u8>,
    carries: Carries,
}

fn messages() -> Vec<Message> {
    let oru = fixture("oru_r01_results");
    let a28 = fixture("adt_a28_add_person");
    (0..MESSAGES)
        .map(|i| {
            if i % 2 == 0 {
                let control_id = format!("CRASH-R{i}");
                let fillers = [format!("FL{i}A"), format!("FL{i}B")];
                let text = oru
                    .replace("|ZLB01-0001|", &format!("|{control_id}|"))
                    .replace("FL0001", &fillers[0])
                    .replace("FL0002", &fillers[1])
                    .replace("PL0001", &format!("PL{i}A"))
                    .replace("PL0002", &format!("PL{i}B"));
                Message {
                    control_id,
                    bytes: text.into_bytes(),
                    carries: Carries::Results(fillers),
                }
            } else {
                let control_id = format!("CRASH-P{i}");
                let nhs = nhs_number(i);
                let text = a28
                    .replace("|ZRH01-0028|", &format!("|{control_id}|"))
                    .replace("9990000026", &nhs)
                    .replace("RX2222222", &format!("RX{i:07}"))
                    .replace("EXAMPLE^BERNARD", &format!("CRASH{}^BERNARD", letters(i)));
                Message {
                    control_id,
                    bytes: text.into_bytes(),
                    carries: Carries::Person(nhs),
                }
            }
        })
        .collect()
}

/// The server process; killed with SIGKILL when dropped (a failed test leaves nothing behind).
struct Server {
    child: Child,
    mllp: SocketAddr,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_carerecord"))
            .args([
                "serve",
                "--data-dir",
                data_dir.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--mllp-listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "off",
            ])
            .env("CARERECORD_LOG_FORMAT", "json")
            .env("CARERECORD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = Vec::new();
        let mllp = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                panic!("carerecord serve ended before listening for MLLP: {seen:#?}");
            };
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if v["fields"]["message"] == "HL7 v2 over MLLP listening" {
                break v["fields"]["addr"].as_str().unwrap().parse().unwrap();
            }
            seen.push(line);
        };
        // Keep reading the log: a full pipe would stop the server.
        std::thread::spawn(move || for _ in lines {});
        Server { child, mllp }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_frame(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    r.read_until(0x1C, &mut buf).ok()?;
    if buf.last() != Some(&0x1C) {
        return None;
    }
    let mut cr = [0u8; 1];
    r.read_exact(&mut cr).ok()?;
    let start = buf.iter().position(|&b| b == 0x0B)? + 1;
    Some(buf[start..buf.len() - 1].to_vec())
}

fn msa(ack: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(ack);
    let line = text
        .split('\r')
        .find(|s| s.starts_with("MSA|"))
        .unwrap_or_else(|| panic!("no MSA in {text}"));
    let f: Vec<&str> = line.split('|').collect();
    (f[1].to_owned(), f.get(2).copied().unwrap_or("").to_owned())
}

/// Streams `todo` (indexes into `all`) over one connection, `WINDOW` in flight, and records
/// each message acknowledged AA. Returns when done or when the connection breaks.
fn send(addr: SocketAddr, all: &[Message], todo: &[usize], acked: &Mutex<HashSet<usize>>) {
    let Ok(conn) = TcpStream::connect(addr) else {
        return;
    };
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn.set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    let (mut written, mut read) = (0, 0);
    while read < todo.len() {
        while written < todo.len() && written - read < WINDOW {
            let m = &all[todo[written]];
            let mut frame = vec![0x0B];
            frame.extend_from_slice(&m.bytes);
            frame.extend_from_slice(&[0x1C, 0x0D]);
            if writer.write_all(&frame).is_err() {
                return;
            }
            written += 1;
        }
        let Some(ack) = read_frame(&mut reader) else {
            return;
        };
        let (code, id) = msa(&ack);
        let i = todo[read];
        assert_eq!(id, all[i].control_id, "ACKs come back in order");
        // AR means "not stored, resend"; anything else would be a mapping bug.
        assert!(code == "AA" || code == "AR", "{code} for {id}");
        if code == "AA" {
            acked.lock().unwrap().insert(i);
        }
        read += 1;
    }
}

/// A random number below `n` (from the OS; printed, so a failure can be looked into).
fn random_below(n: usize) -> usize {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    (u64::from_le_bytes(b) % n.max(1) as u64) as usize
}

/// One round: starts the server, streams every message not yet acknowledged over
/// `CONNECTIONS` connections, and — when `kill_after` is given — kills the server with SIGKILL
/// as soon as that many messages in all have been acknowledged.
fn round(
    data_dir: &Path,
    all: &Arc<Vec<Message>>,
    acked: &Arc<Mutex<HashSet<usize>>>,
    kill_after: Option<usize>,
) {
    let server = Server::start(data_dir);
    let todo: Vec<usize> = {
        let done = acked.lock().unwrap();
        (0..all.len()).filter(|i| !done.contains(i)).collect()
    };
    let senders: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let mine: Vec<usize> = todo.iter().copied().skip(c).step_by(CONNECTIONS).collect();
            let (all, acked, addr) = (all.clone(), acked.clone(), server.mllp);
            std::thread::spawn(move || send(addr, &all, &mine, &acked))
        })
        .collect();
    if let Some(n) = kill_after {
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.lock().unwrap().len() < n
            && !senders.iter().all(std::thread::JoinHandle::is_finished)
        {
            assert!(Instant::now() < deadline, "the senders stalled");
            std::thread::sleep(Duration::from_millis(1));
        }
        server.kill();
        for s in senders {
            s.join().unwrap();
        }
    } else {
        for s in senders {
            s.join().unwrap();
        }
        // The last round ends with a kill too: an acknowledged message must survive it.
        server.kill();
    }
}

/// Checks the data directory (with the server stopped): every acknowledged message is in the
/// log with AA and its resources are stored exactly once; every other message is either
/// logged with all of its resources or neither; nothing else was written.
fn check(data_dir: &Path, all: &[Message], acked: &HashSet<usize>) -> usize {
    let config = carerecord::config::Config {
        data_dir: data_dir.to_owned(),
        ..carerecord::config::Config::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = carerecord::open_store(&config).await.unwrap();
        let systems = ingest::systems(store.as_ref()).await.unwrap();
        let sender = |facility: &str| {
            systems
                .iter()
                .find(|s| s.msh_facility == facility)
                .unwrap()
                .id
                .clone()
        };
        let (lab, pas) = (sender("ZLB01"), sender("ZRH01"));
        let filler_system = carerecord_hl7::map::identifier_system("ZLB01", "filler-order-number");
        let mut tx = store.begin().await.unwrap();
        let (mut logged_count, mut reports, mut results, mut people) = (0, 0, 0, 0);
        for (i, m) in all.iter().enumerate() {
            let (from, keys) = match &m.carries {
                Carries::Results(f) => (
                    &lab,
                    f.iter()
                        .map(|v| {
                            (
                                ResourceType::DiagnosticReport,
                                filler_system.clone(),
                                v.clone(),
                            )
                        })
                        .collect(),
                ),
                Carries::Person(nhs) => (
                    &pas,
                    vec![(ResourceType::Patient, NHS.to_owned(), nhs.clone())],
                ),
            };
            let logged = ingest::logged_message(store.as_ref(), from, &m.control_id)
                .await
                .unwrap();
            let found = ingest::tx_identified(tx.as_mut(), keys.clone())
                .await
                .unwrap();
            if acked.contains(&i) {
                assert_eq!(
                    logged.as_ref().map(|l| l.ack_code.as_str()),
                    Some("AA"),
                    "acknowledged {} is in the message log",
                    m.control_id
                );
            }
            match logged {
                Some(_) => {
                    logged_count += 1;
                    assert_eq!(
                        found.len(),
                        keys.len(),
                        "{} is logged: each of its resources is stored exactly once",
                        m.control_id
                    );
                }
                None => assert!(
                    found.is_empty(),
                    "{} is not logged, yet some of it was stored",
                    m.control_id
                ),
            }
            for (key, _, _) in &found {
                if key.resource_type == ResourceType::Patient {
                    people += 1;
                    continue;
                }
                reports += 1;
                let report = store
                    .read(
                        key.resource_type,
                        &key.id,
                        &carerecord_access::Visibility::All,
                    )
                    .await
                    .unwrap();
                let body: Value = serde_json::from_str(&report.body).unwrap();
                for r in body["result"].as_array().unwrap() {
                    let (_, id) = r["reference"].as_str().unwrap().split_once('/').unwrap();
                    let id = carerecord_fhir::LogicalId::parse(id).unwrap();
                    store
                        .read(
                            ResourceType::Observation,
                            &id,
                            &carerecord_access::Visibility::All,
                        )
                        .await
                        .unwrap_or_else(|e| panic!("{}: a result is missing: {e}", m.control_id));
                    results += 1;
                }
            }
        }
        drop(tx);
        // Nothing stored beside what the logged messages carried: no orphan Observation of a
        // half-applied message, no second copy under another id. (The results' person is
        // one more Patient.)
        let counts = resource_counts(data_dir).await;
        assert_eq!(
            counts.get("DiagnosticReport").copied().unwrap_or(0),
            reports
        );
        assert_eq!(counts.get("Observation").copied().unwrap_or(0), results);
        let results_person = usize::from(reports > 0);
        assert_eq!(
            counts.get("Patient").copied().unwrap_or(0),
            people + results_person
        );
        logged_count
    })
}

async fn resource_counts(data_dir: &Path) -> BTreeMap<String, usize> {
    use sqlx::Connection;
    let url = format!(
        "sqlite://{}?mode=ro",
        data_dir.join("carerecord.db").display()
    );
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT resource_type, count(*) FROM resources WHERE deleted = FALSE GROUP BY resource_type",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(t, n)| (t, usize::try_from(n).unwrap()))
        .collect()
}

fn setup(data_dir: &Path, scratch: &Path) {
    let orgs = scratch.join("organisations.ndjson");
    let lines: Vec<String> = [("org-zrh01", "ZRH01"), ("org-zlb01", "ZLB01")]
        .iter()
        .map(|(id, ods)| {
            serde_json::json!({"resourceType": "Organization", "id": id,
                "identifier": [{"system": ODS, "value": ods}], "name": format!("Synthetic {ods}")})
            .to_string()
        })
        .collect();
    std::fs::write(&orgs, lines.join("\n") + "\n").unwrap();
    let dir = data_dir.to_str().unwrap();
    let out = super::carerecord(&[
        "import",
        orgs.to_str().unwrap(),
        "--data-dir",
        dir,
        "--metrics-listen",
        "off",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (org, app, facility) in [
        ("org-zrh01", "PAS", "ZRH01"),
        ("org-zlb01", "WINPATH", "ZLB01"),
    ] {
        let out = super::carerecord(&[
            "systems",
            "add",
            "--name",
            &format!("{facility} {app}"),
            "--organisation",
            org,
            "--msh-application",
            app,
            "--msh-facility",
            facility,
            "--data-dir",
            dir,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_server_killed_twice_while_senders_stream_loses_no_acknowledged_message_and_half_applies_none()
{
    let t = tempfile::tempdir().unwrap();
    let data_dir = t.path().join("data");
    setup(&data_dir, t.path());
    let all = Arc::new(messages());
    let acked = Arc::new(Mutex::new(HashSet::new()));

    // First kill somewhere in the first half, the second in what is left.
    let first = MESSAGES / 8 + random_below(MESSAGES * 3 / 8);
    eprintln!("first SIGKILL after {first} ACKs");
    round(&data_dir, &all, &acked, Some(first));
    let after_first = acked.lock().unwrap().clone();
    let logged = check(&data_dir, &all, &after_first);
    assert!(logged >= after_first.len());
    assert!(
        after_first.len() < MESSAGES,
        "the first kill came before the end"
    );

    let left = MESSAGES - after_first.len();
    let second = after_first.len() + left / 4 + random_below(left / 2);
    eprintln!("second SIGKILL after {second} ACKs");
    round(&data_dir, &all, &acked, Some(second));
    let after_second = acked.lock().unwrap().clone();
    check(&data_dir, &all, &after_second);
    assert!(
        after_second.len() < MESSAGES,
        "the second kill came before the end"
    );

    // The senders resend what was not acknowledged (a resend of a message stored before the
    // kill is answered from the log, not applied again) until everything is.
    for _ in 0..3 {
        if acked.lock().unwrap().len() == MESSAGES {
            break;
        }
        round(&data_dir, &all, &acked, None);
    }
    let done = acked.lock().unwrap().clone();
    assert_eq!(done.len(), MESSAGES);
    assert_eq!(check(&data_dir, &all, &done), MESSAGES);

    // The audit chain survived the kills too.
    let out = super::carerecord(&[
        "audit",
        "verify",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--metrics-listen",
        "off",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
