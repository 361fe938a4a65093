//! MLLP framing: each message travels as `VT message FS CR` (0x0B … 0x1C 0x0D).
//!
//! [`MllpCodec`] is a `tokio_util::codec` decoder and encoder. The decoder skips bytes outside
//! a frame (line noise, keep-alive newlines), waits across partial reads, yields each complete
//! message without its framing, and refuses a frame longer than its limit without buffering
//! it. A `VT` inside an unfinished frame means the sender gave up on that frame and started
//! again: the unfinished bytes are dropped (and counted), the new frame is read.
//!
//! A decoding error ends a `FramedRead` stream, so on [`MllpError::FrameTooLarge`] the listener
//! should answer AR and close the connection.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

pub const START_BLOCK: u8 = 0x0B;
pub const END_BLOCK: u8 = 0x1C;
pub const CARRIAGE_RETURN: u8 = 0x0D;

/// Default largest message accepted: 16 MiB (a discharge letter with a PDF fits).
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum MllpError {
    #[error("an MLLP frame exceeded {limit} bytes")]
    FrameTooLarge { limit: usize },
    #[error("the connection closed inside an MLLP frame ({bytes} bytes unfinished)")]
    Truncated { bytes: usize },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The MLLP codec. Keep one per connection.
#[derive(Debug, Clone)]
pub struct MllpCodec {
    max_frame: usize,
    /// Inside a frame: bytes of the buffer (after the VT) already searched for FS.
    in_frame: bool,
    scanned: usize,
    discarded: u64,
}

impl Default for MllpCodec {
    fn default() -> Self {
        MllpCodec::new(DEFAULT_MAX_FRAME)
    }
}

impl MllpCodec {
    /// A codec refusing messages longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        MllpCodec {
            max_frame,
            in_frame: false,
            scanned: 0,
            discarded: 0,
        }
    }

    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Bytes thrown away so far: noise between frames and abandoned partial frames.
    pub fn discarded_bytes(&self) -> u64 {
        self.discarded
    }
}

impl Decoder for MllpCodec {
    type Item = Bytes;
    type Error = MllpError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, MllpError> {
        loop {
            if !self.in_frame {
                match src.iter().position(|b| *b == START_BLOCK) {
                    Some(i) => {
                        self.discarded += i as u64;
                        src.advance(i + 1);
                        self.in_frame = true;
                        self.scanned = 0;
                    }
                    None => {
                        self.discarded += src.len() as u64;
                        src.clear();
                        return Ok(None);
                    }
                }
            }
            // Inside a frame: look for FS (or a new VT) past what was already searched.
            let found = src[self.scanned..]
                .iter()
                .position(|b| *b == END_BLOCK || *b == START_BLOCK)
                .map(|i| i + self.scanned);
            match found {
                Some(i) if src[i] == START_BLOCK => {
                    // The sender restarted: drop the unfinished frame.
                    self.discarded += i as u64 + 1;
                    src.advance(i + 1);
                    self.scanned = 0;
                }
                Some(i) => {
                    if i > self.max_frame {
                        return Err(self.too_large(src, i));
                    }
                    // FS must be followed by CR; wait for the byte if it has not arrived.
                    let Some(next) = src.get(i + 1).copied() else {
                        self.scanned = i;
                        return Ok(None);
                    };
                    let message = src.split_to(i).freeze();
                    // FS CR ends the frame; a lone FS is taken as the end too (lenient
                    // senders) and the byte after it is left to be skipped as noise.
                    src.advance(if next == CARRIAGE_RETURN { 2 } else { 1 });
                    self.in_frame = false;
                    self.scanned = 0;
                    return Ok(Some(message));
                }
                None => {
                    if src.len() > self.max_frame {
                        let len = src.len();
                        return Err(self.too_large(src, len));
                    }
                    self.scanned = src.len();
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, MllpError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if self.in_frame => {
                let bytes = src.len();
                src.clear();
                self.in_frame = false;
                self.scanned = 0;
                Err(MllpError::Truncated { bytes })
            }
            None => Ok(None),
        }
    }
}

impl MllpCodec {
    fn too_large(&mut self, src: &mut BytesMut, upto: usize) -> MllpError {
        // Do not keep the oversized bytes around.
        self.discarded += upto as u64;
        src.advance(upto.min(src.len()));
        self.in_frame = false;
        self.scanned = 0;
        MllpError::FrameTooLarge {
            limit: self.max_frame,
        }
    }
}

impl Encoder<&[u8]> for MllpCodec {
    type Error = MllpError;

    fn encode(&mut self, item: &[u8], dst: &mut BytesMut) -> Result<(), MllpError> {
        dst.reserve(item.len() + 3);
        dst.put_u8(START_BLOCK);
        dst.put_slice(item);
        dst.put_u8(END_BLOCK);
        dst.put_u8(CARRIAGE_RETURN);
        Ok(())
    }
}

impl Encoder<Bytes> for MllpCodec {
    type Error = MllpError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), MllpError> {
        Encoder::<&[u8]>::encode(self, &item, dst)
    }
}

/// Frames one message (for clients and tests that do not use a codec).
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(START_BLOCK);
    out.extend_from_slice(message);
    out.push(END_BLOCK);
    out.push(CARRIAGE_RETURN);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut MllpCodec, buf: &mut BytesMut) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Some(f) = codec.decode(buf).expect("decodes") {
            out.push(f);
        }
        out
    }

    #[test]
    fn several_frames_in_one_read_come_out_in_order() {
        let mut codec = MllpCodec::default();
        let mut buf = BytesMut::new();
        for m in [&b"MSH|one"[..], b"MSH|two", b"MSH|three"] {
            buf.extend_from_slice(&frame(m));
        }
        let frames = decode_all(&mut codec, &mut buf);
        assert_eq!(frames, vec![&b"MSH|one"[..], b"MSH|two", b"MSH|three"]);
        assert!(buf.is_empty());
    }

    #[test]
    fn a_frame_split_at_every_byte_is_reassembled() {
        let wire = [frame(b"MSH|first"), frame(b"MSH|second")].concat();
        let mut codec = MllpCodec::default();
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for b in wire {
            buf.put_u8(b);
            frames.extend(decode_all(&mut codec, &mut buf));
        }
        assert_eq!(frames, vec![&b"MSH|first"[..], b"MSH|second"]);
    }

    #[test]
    fn garbage_between_frames_is_skipped_and_counted() {
        let wire = [
            &b"\r\nnoise"[..],
            &frame(b"MSH|a"),
            b"\n\n",
            &frame(b"MSH|b"),
        ]
        .concat();
        let mut codec = MllpCodec::default();
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(
            decode_all(&mut codec, &mut buf),
            vec![&b"MSH|a"[..], b"MSH|b"]
        );
        assert_eq!(codec.discarded_bytes(), 9);
    }

    #[test]
    fn an_abandoned_frame_is_dropped_when_a_new_one_starts() {
        let wire = [&b"\x0bMSH|half"[..], &frame(b"MSH|whole")].concat();
        let mut codec = MllpCodec::default();
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(decode_all(&mut codec, &mut buf), vec![&b"MSH|whole"[..]]);
    }

    #[test]
    fn an_oversized_frame_is_refused_without_buffering_it() {
        let mut codec = MllpCodec::new(10);
        let mut buf = BytesMut::from(&b"\x0bMSH|0123456789abcdef"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(MllpError::FrameTooLarge { limit: 10 })
        ));
        assert!(buf.is_empty());
        // Also when the end marker is already there.
        let mut codec = MllpCodec::new(10);
        let mut buf = BytesMut::from(&frame(b"MSH|0123456789abcdef")[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(MllpError::FrameTooLarge { .. })
        ));
        // A frame of exactly the limit passes.
        let mut codec = MllpCodec::new(10);
        let mut buf = BytesMut::from(&frame(b"MSH|012345")[..]);
        assert_eq!(decode_all(&mut codec, &mut buf), vec![&b"MSH|012345"[..]]);
    }

    #[test]
    fn eof_inside_a_frame_is_a_truncation() {
        let mut codec = MllpCodec::default();
        let mut buf = BytesMut::from(&b"\x0bMSH|never finished"[..]);
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(MllpError::Truncated { bytes: 18 })
        ));
        let mut buf = BytesMut::from(&b"trailing noise"[..]);
        assert!(matches!(codec.decode_eof(&mut buf), Ok(None)));
    }

    #[test]
    fn fs_waits_for_its_cr() {
        let mut codec = MllpCodec::default();
        let mut buf = BytesMut::from(&b"\x0bMSH|x\x1c"[..]);
        assert_eq!(codec.decode(&mut buf).expect("ok"), None);
        buf.put_u8(CARRIAGE_RETURN);
        assert_eq!(
            codec.decode(&mut buf).expect("ok"),
            Some(Bytes::from_static(b"MSH|x"))
        );
    }

    #[test]
    fn encoding_frames_the_message() {
        let mut codec = MllpCodec::default();
        let mut dst = BytesMut::new();
        codec.encode(&b"MSH|ack"[..], &mut dst).expect("encodes");
        assert_eq!(&dst[..], b"\x0bMSH|ack\x1c\r");
    }
}
