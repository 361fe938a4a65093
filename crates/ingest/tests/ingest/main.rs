//! Gathering end to end: HL7 v2 over a real TCP connection into a real store, and identity
//! matching against stored Patients. All data is synthetic. The store is SQLite, or a fresh
//! PostgreSQL database per test under `CARERECORD_TEST_BACKEND=postgres` (which fails, not
//! skips, when PostgreSQL is unreachable).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod clinical;
mod matching;
mod mllp;
mod tls;

use std::path::PathBuf;
use std::sync::Arc;

use carerecord_access::Visibility;
use carerecord_fhir::{LogicalId, ResourceType};
use carerecord_ingest::pipeline::Pipeline;
use carerecord_search::query::{Handling, parse};
use carerecord_store::{AuditKey, ResourceStore, StoredResource, write};
use carerecord_store_postgres::test_support;
use carerecord_store_sqlite::SqliteStore;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

pub const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";
const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

pub struct App {
    pub store: Arc<dyn ResourceStore>,
    pub addr: std::net::SocketAddr,
    pub pipeline: Arc<Pipeline>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
    database: Option<test_support::TestDatabase>,
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(db) = self.database.take() {
            db.drop_blocking();
        }
    }
}

fn audit_key() -> AuditKey {
    AuditKey::new(b"carerecord-ingest-test-key-0001!").unwrap()
}

/// The store under test: SQLite in `dir`, or a fresh PostgreSQL database.
async fn open_store(
    dir: &tempfile::TempDir,
) -> (Arc<dyn ResourceStore>, Option<test_support::TestDatabase>) {
    if std::env::var("CARERECORD_TEST_BACKEND").as_deref() == Ok("postgres") {
        match test_support::fresh(8).await.unwrap() {
            test_support::Fresh::Ready(store, db) => {
                (Arc::new(store.with_audit_key(audit_key())), Some(db))
            }
            test_support::Fresh::Unreachable(e) => {
                panic!("CARERECORD_TEST_BACKEND=postgres but PostgreSQL is unreachable: {e}")
            }
        }
    } else {
        let store = SqliteStore::open(&dir.path().join("carerecord.db"))
            .await
            .unwrap()
            .with_audit_key(audit_key());
        (Arc::new(store), None)
    }
}

pub fn lid(s: &str) -> LogicalId {
    LogicalId::parse(s).unwrap()
}

/// A fresh store with two organisations and their feeds registered, and the MLLP listener on
/// an ephemeral port.
pub async fn spawn_app() -> App {
    spawn_app_with(None).await
}

/// [`spawn_app`], the listener over TLS when `tls` is given.
pub async fn spawn_app_with(tls: Option<tokio_rustls::TlsAcceptor>) -> App {
    let dir = tempfile::tempdir().unwrap();
    let (store, database) = open_store(&dir).await;
    let mut tx = store.begin().await.unwrap();
    for (id, ods, name) in [
        ("org-zrh01", "ZRH01", "Synthetic Royal Hospital"),
        ("org-zlb01", "ZLB01", "Synthetic Pathology"),
        ("org-zch01", "ZCH01", "Synthetic Care Home"),
    ] {
        write::update(
            tx.as_mut(),
            ResourceType::Organization,
            &lid(id),
            json!({"resourceType": "Organization", "identifier": [{"system": ODS, "value": ods}], "name": name}),
            None,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    carerecord_ingest::systems::add(store.as_ref(), "ZRH01 PAS", "org-zrh01", "PAS", "ZRH01")
        .await
        .unwrap();
    carerecord_ingest::systems::add(
        store.as_ref(),
        "ZLB01 LIMS",
        "org-zlb01",
        "WINPATH",
        "ZLB01",
    )
    .await
    .unwrap();
    let pipeline = Pipeline::start(store.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(carerecord_ingest::mllp::serve(
        listener,
        pipeline.clone(),
        tls,
        async move {
            let _ = stopped.await;
        },
    ));
    App {
        store,
        addr,
        pipeline,
        _dir: dir,
        _stop: stop,
        database,
    }
}

pub fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../hl7/tests/fixtures")
        .join(format!("{name}.hl7"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Sends one framed message and reads one framed reply.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut S, message: &[u8]) -> Vec<u8> {
    let mut framed = vec![0x0B];
    framed.extend_from_slice(message);
    framed.extend_from_slice(&[0x1C, 0x0D]);
    conn.write_all(&framed).await.unwrap();
    read_frame(conn).await
}

pub async fn read_frame<S: AsyncRead + Unpin>(conn: &mut S) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let n = conn.read(&mut byte).await.unwrap();
        assert_eq!(n, 1, "the connection closed before an ACK");
        buf.push(byte[0]);
        if buf.ends_with(&[0x1C, 0x0D]) {
            break;
        }
    }
    assert_eq!(buf.first(), Some(&0x0B));
    buf[1..buf.len() - 2].to_vec()
}

/// MSA-1 and MSA-2 of an ACK.
pub fn msa(ack: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(ack);
    let line = text
        .split('\r')
        .find(|s| s.starts_with("MSA|"))
        .unwrap_or_else(|| panic!("no MSA in {text}"));
    let f: Vec<&str> = line.split('|').collect();
    (f[1].to_owned(), f.get(2).copied().unwrap_or("").to_owned())
}

/// The segment of an ACK that starts with `id|`.
pub fn segment(ack: &[u8], id: &str) -> Option<String> {
    String::from_utf8_lossy(ack)
        .split('\r')
        .find(|s| s.starts_with(&format!("{id}|")))
        .map(str::to_owned)
}

pub async fn search(
    store: &Arc<dyn ResourceStore>,
    rt: ResourceType,
    pairs: &[(&str, &str)],
) -> Vec<Value> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let q = parse(rt, &pairs, Handling::Strict, "http://localhost/fhir").unwrap();
    let out = store.search(&q, 100, &Visibility::All).await.unwrap();
    out.matches.iter().map(body).collect()
}

pub fn body(r: &StoredResource) -> Value {
    serde_json::from_str(&r.body).unwrap()
}

/// Replaces `from` with `to` in a message's text (to make variants of a fixture).
pub fn edited(message: &[u8], from: &str, to: &str) -> Vec<u8> {
    String::from_utf8(message.to_vec())
        .unwrap()
        .replace(from, to)
        .into_bytes()
}
