//! The MLLP listener: many connections, many messages per connection.
//!
//! Each connection reads frames with [`MllpCodec`] and hands each message to the
//! [`Pipeline`]; acknowledgements go back in the order the messages came, each only once what
//! it carries is committed. A sender that waits for each ACK (HL7's original mode) works, and
//! so does one that keeps several messages in flight: up to [`IN_FLIGHT`] per connection are
//! processed together (and so share commits).

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use carerecord_hl7::mllp::{MllpCodec, MllpError};
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

use crate::pipeline::Pipeline;

/// Messages of one connection being processed at once at the most.
pub const IN_FLIGHT: usize = 64;

/// Accepts connections on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    pipeline: Arc<Pipeline>,
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
                let pipeline = pipeline.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, pipeline).await {
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

async fn connection(stream: TcpStream, pipeline: Arc<Pipeline>) -> Result<(), MllpError> {
    let _ = stream.set_nodelay(true);
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
