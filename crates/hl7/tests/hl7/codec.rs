//! The codec on a real TCP connection: partial writes, several frames per write, the ACK back.

use carerecord_hl7::mllp::{MllpCodec, MllpError, frame};
use carerecord_hl7::{AckCode, ack, parse};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

use crate::fixture;

#[tokio::test]
async fn messages_cut_and_batched_over_tcp_arrive_whole_and_are_acknowledged() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let messages = [
        fixture("adt_a01_admit.hl7"),
        fixture("oru_r01_results.hl7"),
        fixture("mdm_t02_pdf.hl7"),
        fixture("oru_r01_500_obx.hl7"),
    ];
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.expect("accept");
        let mut framed = Framed::new(socket, MllpCodec::default());
        let mut received = Vec::new();
        while let Some(frame) = framed.next().await {
            let frame = frame.expect("frame");
            let msg = parse(&frame).expect("parses");
            let reply = ack(msg.header(), AckCode::AA, &[], "ACK", "20260720150000");
            framed.send(&reply[..]).await.expect("send ack");
            received.push(frame.to_vec());
        }
        received
    });

    let mut client = TcpStream::connect(addr).await.expect("connect");
    let wire: Vec<u8> = messages.iter().flat_map(|m| frame(m)).collect();
    // The first message a byte at a time with noise before it, the rest in uneven chunks.
    client.write_all(b"\r\n").await.expect("write");
    let first = frame(&messages[0]).len();
    for b in &wire[..first] {
        client.write_all(&[*b]).await.expect("write");
        client.flush().await.expect("flush");
    }
    for chunk in wire[first..].chunks(777) {
        client.write_all(chunk).await.expect("write");
    }
    client.shutdown().await.expect("shutdown write");
    let mut acks = Vec::new();
    client.read_to_end(&mut acks).await.expect("read acks");
    let received = server.await.expect("server");

    assert_eq!(received, messages.to_vec());
    let control_ids: Vec<String> = acks
        .split(|b| *b == 0x0b)
        .filter(|a| !a.is_empty())
        .map(|a| {
            let a = a.strip_suffix(b"\x1c\r").expect("framed ack");
            parse(a)
                .expect("ack parses")
                .segment("MSA")
                .and_then(|m| m.text(2))
                .expect("MSA-2")
        })
        .collect();
    assert_eq!(
        control_ids,
        vec!["ZRH01-0001", "ZLB01-0001", "ZRH01-T02-0002", "ZLB01-0500"]
    );
}

#[tokio::test]
async fn an_oversized_frame_over_tcp_is_an_error_not_a_buffer() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.expect("accept");
        let mut framed = Framed::new(socket, MllpCodec::new(4096));
        framed.next().await
    });
    let mut client = TcpStream::connect(addr).await.expect("connect");
    let big = fixture("oru_r01_500_obx.hl7");
    assert!(big.len() > 4096);
    // The server may close as soon as it refuses: a failed write is fine here.
    let _ = client.write_all(&frame(&big)).await;
    let first = server.await.expect("server");
    assert!(
        matches!(first, Some(Err(MllpError::FrameTooLarge { limit: 4096 }))),
        "{first:?}"
    );
}
