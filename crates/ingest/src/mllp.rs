//! The MLLP listener: many connections, many messages per connection, in clear or over TLS.
//!
//! Each connection reads frames with [`MllpCodec`] and hands each message to the
//! [`Pipeline`]; acknowledgements go back in the order the messages came, each only once what
//! it carries is committed. A sender that waits for each ACK (HL7's original mode) works, and
//! so does one that keeps several messages in flight: up to [`IN_FLIGHT`] per connection are
//! processed together (and so share commits).
//!
//! With [`MllpTls`] every connection must complete a TLS handshake first (and, when a client
//! CA is given, present a certificate that CA issued: mutual TLS, as feeds crossing a network
//! between organisations use). A connection that does not is closed before a byte of HL7 is
//! read, so nothing is stored and nothing is acknowledged.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use carerecord_hl7::mllp::{MllpCodec, MllpError};
use futures::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::Framed;

use crate::pipeline::Pipeline;

/// Messages of one connection being processed at once at the most.
pub const IN_FLIGHT: usize = 64;

/// How long a TLS handshake may take: a peer that stalls it gives up its connection.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The listener's TLS settings, as PEM files.
#[derive(Debug, Clone)]
pub struct MllpTls {
    /// The server's certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// When given, senders must present a certificate this CA (bundle) issued.
    pub client_ca: Option<PathBuf>,
}

/// Why the TLS settings cannot be used; names the file, never key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("MLLP TLS: {0}")]
    Config(String),
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsSetupError {
    TlsSetupError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

impl MllpTls {
    /// Reads the files and builds the acceptor (rustls with the ring provider; TLS 1.2 and 1.3).
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsSetupError> {
        let chain = certificates(&self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| file_error(&self.key, e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError::Config(e.to_string()))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in certificates(ca)? {
                    roots.add(c).map_err(|e| file_error(ca, e))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots.into(),
                    provider,
                )
                .build()
                .map_err(|e| file_error(ca, e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|e| TlsSetupError::Config(format!("certificate and key: {e}")))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// Accepts connections on `listener` until `shutdown` completes; over TLS when `tls` is given.
pub async fn serve(
    listener: TcpListener,
    pipeline: Arc<Pipeline>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "MLLP accept failed");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let pipeline = pipeline.clone();
                let tls = tls.clone();
                // The handshake runs in the connection's own task, so a slow or hostile peer
                // never holds up the accept loop.
                tokio::spawn(async move {
                    let ended = match tls {
                        None => connection(stream, pipeline).await,
                        Some(acceptor) => {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => connection(s, pipeline).await,
                                Ok(Err(e)) => {
                                    tracing::warn!(%peer, error = %e, "MLLP TLS handshake refused");
                                    return;
                                }
                                Err(_) => {
                                    tracing::warn!(%peer, "MLLP TLS handshake timed out");
                                    return;
                                }
                            }
                        }
                    };
                    if let Err(e) = ended {
                        tracing::info!(%peer, error = %e, "MLLP connection ended");
                    }
                });
            }
        }
    }
}

/// A nack for a message whose processing task failed (it was not stored: resend).
fn unavailable() -> Vec<u8> {
    b"MSH|^~\\&|CARERECORD||||||ACK|CRBUSY|P|2.4\rMSA|AR|\rERR|^^^207&Application internal error&HL70357||207|E||||store unavailable, resend\r".to_vec()
}

async fn connection<S>(stream: S, pipeline: Arc<Pipeline>) -> Result<(), MllpError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut frames) = Framed::new(stream, MllpCodec::default()).split::<Bytes>();
    let (pending_tx, mut pending_rx) = mpsc::channel::<tokio::task::JoinHandle<Vec<u8>>>(IN_FLIGHT);
    // Writes the ACKs in order as each message's processing finishes.
    let acks = tokio::spawn(async move {
        while let Some(handle) = pending_rx.recv().await {
            let ack = handle.await.unwrap_or_else(|_| unavailable());
            if sink.send(Bytes::from(ack)).await.is_err() {
                break;
            }
        }
    });
    let mut result = Ok(());
    while let Some(frame) = frames.next().await {
        match frame {
            Ok(bytes) => {
                let p = pipeline.clone();
                let handle = tokio::spawn(async move { p.handle(&bytes).await.ack });
                if pending_tx.send(handle).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    drop(pending_tx);
    let _ = acks.await;
    result
}
