use bytes::BytesMut;
use carerecord_hl7::map::map;
use carerecord_hl7::mllp::{MllpCodec, frame};
use carerecord_hl7::{nack_unparsed, parse};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

use crate::{ctx, fixture};

/// Parses, maps and acknowledges whatever comes: only the absence of a panic is asserted.
fn exercise(bytes: &[u8]) {
    match parse(bytes) {
        Ok(msg) => {
            let _ = map(&msg, &ctx("ZRH01"));
        }
        Err(e) => {
            let _ = nack_unparsed(&e, "P1", "20260101000000");
            let _ = e.to_string();
        }
    }
}

fn hl7ish() -> impl Strategy<Value = Vec<u8>> {
    let alphabet: Vec<u8> = b"|^~\\&\r\n\"0123456789ABCDEFHMNPRSTXZ.+-:/ ".to_vec();
    (
        prop::sample::select(vec![
            "ADT^A01", "ADT^A03", "ADT^A40", "ORU^R01", "MDM^T02", "ADT^A31",
        ]),
        prop::collection::vec(prop::sample::select(alphabet), 0..600),
    )
        .prop_map(|(kind, body)| {
            let mut m = format!(
                "MSH|^~\\&|A|ZRH01|B|C|20260101||{kind}|1|P|2.4\rPID|||9990000018^^^NHS^NH\r"
            )
            .into_bytes();
            m.extend(body);
            m
        })
}

/// Well-formed messages of the mapped types whose segments hold random fields: they parse, so
/// every mapping path meets arbitrary values.
fn mapped_shapes() -> impl Strategy<Value = Vec<u8>> {
    let field = prop::collection::vec(
        prop::sample::select(b"^~&\\\"0123456789ABCDEFHILMNOPRSTUXZ.+-:/<> =".to_vec()),
        0..24,
    );
    let segment = (
        prop::sample::select(vec![
            "PID", "PD1", "PV1", "PV2", "EVN", "MRG", "ORC", "OBR", "OBX", "NTE", "TXA", "ZU1",
            "AL1", "DG1", "NK1",
        ]),
        prop::collection::vec(field, 0..40),
    )
        .prop_map(|(id, fields)| {
            let mut s = id.as_bytes().to_vec();
            for f in fields {
                s.push(b'|');
                s.extend(f);
            }
            s.push(b'\r');
            s
        });
    (
        prop::sample::select(vec![
            "ADT^A01", "ADT^A02", "ADT^A03", "ADT^A05", "ADT^A08", "ADT^A11", "ADT^A13", "ADT^A28",
            "ADT^A31", "ADT^A40", "ORU^R01", "MDM^T02",
        ]),
        prop::sample::select(vec!["2.3", "2.4", "2.5.1"]),
        prop::collection::vec(segment, 0..12),
    )
        .prop_map(|(kind, version, segments)| {
            let mut m =
                format!("MSH|^~\\&|A|ZRH01|B|C|20260101||{kind}|1|P|{version}\r").into_bytes();
            for s in segments {
                m.extend(s);
            }
            m
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_parse_or_fail_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        exercise(&bytes);
    }

    #[test]
    fn hl7_shaped_noise_parses_maps_or_fails_without_panicking(bytes in hl7ish()) {
        exercise(&bytes);
    }

    #[test]
    fn random_fields_in_mapped_segments_map_or_fail_without_panicking(bytes in mapped_shapes()) {
        let msg = parse(&bytes);
        prop_assert!(msg.is_ok(), "{:?}", msg.err());
        exercise(&bytes);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in prop::sample::select(vec![
            "adt_a01_admit.hl7", "adt_a03_discharge_to_care_home.hl7", "adt_a40_merge.hl7",
            "oru_r01_results.hl7", "mdm_t02_pdf.hl7", "nasty_escapes.hl7", "nasty_latin1_declared.hl7",
            "adt_a01_allergies_diagnoses_kin.hl7", "adt_a28_empty_al1.hl7",
        ]),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut bytes = fixture(which);
        for (i, b, op) in edits {
            if bytes.is_empty() { break; }
            let at = i.index(bytes.len());
            match op {
                0 => bytes[at] = b,
                1 => bytes.insert(at, b),
                _ => { bytes.remove(at); }
            }
        }
        exercise(&bytes);
    }

    #[test]
    fn the_codec_survives_any_bytes_in_any_chunks(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16),
        limit in 1usize..128,
    ) {
        let mut codec = MllpCodec::new(limit);
        let mut buf = BytesMut::new();
        for c in chunks {
            buf.extend_from_slice(&c);
            while let Ok(Some(_)) = codec.decode(&mut buf) {}
        }
        let _ = codec.decode_eof(&mut buf);
    }

    #[test]
    fn framed_messages_come_back_whole_however_the_stream_is_cut(
        messages in prop::collection::vec(
            prop::collection::vec(any::<u8>().prop_filter("no framing bytes", |b| *b != 0x0b && *b != 0x1c), 0..200),
            1..6,
        ),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let wire: Vec<u8> = messages.iter().flat_map(|m| frame(m)).collect();
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
        points.push(wire.len());
        points.sort_unstable();
        let mut codec = MllpCodec::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut from = 0;
        for p in points {
            buf.extend_from_slice(&wire[from..p]);
            from = p;
            while let Some(f) = codec.decode(&mut buf).expect("no error on well-formed frames") {
                out.push(f.to_vec());
            }
        }
        prop_assert_eq!(out, messages);
    }
}
