//! HL7 v2 over MLLP over TLS: a sender with a certificate from the configured CA is served as
//! over plain TCP; a sender without one, with a stranger's, or speaking plain MLLP to the TLS
//! port gets no ACK and stores nothing.

use std::path::PathBuf;
use std::sync::Arc;

use carerecord_fhir::ResourceType;
use carerecord_ingest::mllp::{MllpTls, TlsSetupError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{NHS, exchange, fixture, msa, search, spawn_app_with};

fn tls_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

fn server_tls(client_ca: bool) -> MllpTls {
    MllpTls {
        cert: tls_file("server.pem"),
        key: tls_file("server.key"),
        client_ca: client_ca.then(|| tls_file("ca.pem")),
    }
}

/// A client trusting the test CA, presenting `identity`'s certificate when given.
fn connector(identity: Option<&str>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(tls_file("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(name) => {
            let chain = CertificateDer::pem_file_iter(tls_file(&format!("{name}.pem")))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(tls_file(&format!("{name}.key"))).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    TlsConnector::from(Arc::new(config))
}

async fn connect(
    addr: std::net::SocketAddr,
    identity: Option<&str>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    connector(identity).connect(name, tcp).await
}

/// Sends a framed message and answers whether an MLLP frame (an ACK) came back before the
/// server closed the connection. With TLS 1.3 a refused client certificate surfaces only
/// here; a plain-TCP sender may get a TLS alert record, which is not an ACK.
async fn acknowledged<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    conn: &mut S,
    message: &[u8],
) -> bool {
    let mut framed = vec![0x0B];
    framed.extend_from_slice(message);
    framed.extend_from_slice(&[0x1C, 0x0D]);
    if conn.write_all(&framed).await.is_err() || conn.flush().await.is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_end(&mut reply),
    )
    .await;
    assert!(
        read.is_ok(),
        "the server neither answered nor closed the connection"
    );
    reply.windows(4).any(|w| w == b"\x0bMSH")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_with_a_certificate_from_the_ca_is_acknowledged_and_stored() {
    let app = spawn_app_with(Some(server_tls(true).acceptor().unwrap())).await;
    let mut conn = connect(app.addr, Some("client")).await.unwrap();
    let ack = exchange(&mut conn, &fixture("adt_a01_admit")).await;
    assert_eq!(msa(&ack), ("AA".to_owned(), "ZRH01-0001".to_owned()));
    let patients = search(
        &app.store,
        ResourceType::Patient,
        &[("identifier", &format!("{NHS}|9990000018"))],
    )
    .await;
    assert_eq!(patients.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_client_ca_any_tls_sender_is_served() {
    let app = spawn_app_with(Some(server_tls(false).acceptor().unwrap())).await;
    let mut conn = connect(app.addr, None).await.unwrap();
    let ack = exchange(&mut conn, &fixture("adt_a01_admit")).await;
    assert_eq!(msa(&ack).0, "AA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_without_the_cas_certificate_or_without_tls_get_nothing_and_store_nothing() {
    let app = spawn_app_with(Some(server_tls(true).acceptor().unwrap())).await;
    let a01 = fixture("adt_a01_admit");

    // No client certificate, then a certificate from another CA: the handshake fails (or,
    // with TLS 1.3, the first read does).
    for identity in [None, Some("stranger")] {
        if let Ok(mut conn) = connect(app.addr, identity).await {
            assert!(
                !acknowledged(&mut conn, &a01).await,
                "{identity:?} was answered"
            );
        }
    }
    // Plain MLLP to the TLS port: not a TLS ClientHello, so the connection is closed.
    let mut plain = TcpStream::connect(app.addr).await.unwrap();
    assert!(!acknowledged(&mut plain, &a01).await);

    assert!(
        search(&app.store, ResourceType::Patient, &[])
            .await
            .is_empty()
    );
    assert!(
        carerecord_store::ingest::logged_message(app.store.as_ref(), "hl7-zrh01-pas", "ZRH01-0001")
            .await
            .unwrap()
            .is_none()
    );
}

#[test]
fn unreadable_tls_files_are_named_in_the_error() {
    let missing = MllpTls {
        cert: tls_file("server.pem"),
        key: tls_file("no-such.key"),
        client_ca: None,
    };
    let Err(e) = missing.acceptor() else {
        panic!("a missing key file was accepted")
    };
    assert!(matches!(e, TlsSetupError::File { .. }), "{e}");
    assert!(e.to_string().contains("no-such.key"), "{e}");

    // A certificate file given as the key: no private key in it.
    let swapped = MllpTls {
        cert: tls_file("server.pem"),
        key: tls_file("server.pem"),
        client_ca: None,
    };
    let Err(e) = swapped.acceptor() else {
        panic!("a certificate was accepted as a key")
    };
    assert!(e.to_string().contains("server.pem"), "{e}");

    // A key that is not the certificate's.
    let mismatched = MllpTls {
        cert: tls_file("server.pem"),
        key: tls_file("client.key"),
        client_ca: None,
    };
    assert!(mismatched.acceptor().is_err());
}
