//! What ADT carries beyond the person and the visit: the GP (PD1-4), the doctors of the visit
//! (PV1-7/8/9/17), the admit reason (PV2-3) and the external patient id (PID-2).

use carerecord_hl7::map::{MapError, Mapped, map};
use serde_json::Value;

use crate::{at, ctx, map_fixture, s};

const FIXTURE: &str = "adt_a01_allergies_diagnoses_kin.hl7";
const GMC: &str = "https://fhir.hl7.org.uk/Id/gmc-number";
const GMP: &str = "https://fhir.hl7.org.uk/Id/gmp-number";
const SNOMED: &str = "http://snomed.info/sct";

fn map_text(text: &str) -> Result<Mapped, MapError> {
    let msg = carerecord_hl7::parse(text.replace('\n', "\r").as_bytes()).expect("parses");
    map(&msg, &ctx("ZRH01"))
}

const BASE: &str = "MSH|^~\\&|PAS|ZRH01|CARERECORD|ZCR01|20260801100000||ADT^A31^ADT_A05|C1|P|2.4
EVN|A31|20260801100000
PID|1||9990000018^^^NHS^NH~RX1234567^^^ZRH01^MR||TESTPERSON^ALICE||19380412|F
";

#[test]
fn the_gp_is_the_practice_then_the_practitioners_by_national_code() {
    let m = map_fixture(FIXTURE, "ZRH01");
    let gp = at(&m.person.patient, "/generalPractitioner");
    assert_eq!(gp.as_array().map(Vec::len), Some(3));
    assert_eq!(s(gp, "/0/identifier/value"), "ZGP02");
    assert_eq!(s(gp, "/1/type"), "Practitioner");
    assert_eq!(s(gp, "/1/identifier/system"), GMP);
    assert_eq!(s(gp, "/1/identifier/value"), "G9999998");
    assert_eq!(
        s(gp, "/1/reference"),
        format!("Practitioner?identifier={GMP}|G9999998")
    );
    assert_eq!(s(gp, "/1/display"), "DR JANE GPNAME");
    // XCN-9 GMC names the register.
    assert_eq!(s(gp, "/2/identifier/system"), GMC);
    assert_eq!(s(gp, "/2/identifier/value"), "4444444");

    // The existing admission's PD1-4 is a GMP code too.
    let m = map_fixture("adt_a01_admit.hl7", "ZRH01");
    assert_eq!(
        s(
            &m.person.patient,
            "/generalPractitioner/1/identifier/system"
        ),
        GMP
    );
}

#[test]
fn the_doctors_of_the_visit_are_its_participants_and_pv2_3_its_reason() {
    let m = map_fixture(FIXTURE, "ZRH01");
    let e = &m.entries[0].resource;
    let p = at(e, "/participant").as_array().expect("participants");
    let typed: Vec<(&str, Option<&str>, Option<&str>)> = p
        .iter()
        .map(|x| {
            (
                x.pointer("/type/0/coding/0/code")
                    .and_then(Value::as_str)
                    .expect("type"),
                x.pointer("/individual/identifier/system")
                    .and_then(Value::as_str),
                x.pointer("/individual/identifier/value")
                    .and_then(Value::as_str),
            )
        })
        .collect();
    let local = "https://fhir.carerecord.example/Id/ZRH01/practitioner";
    assert_eq!(
        typed,
        [
            ("ATND", Some(GMC), Some("1234567")),
            ("REF", Some(local), Some("R1234")),
            ("CON", Some(local), Some("C7654321")),
            ("CON", Some(local), Some("C7654322")),
            // PV1-17 with a name and no id.
            ("ADM", None, None),
        ]
    );
    assert_eq!(
        s(&p[0], "/type/0/coding/0/system"),
        "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
    );
    assert_eq!(s(&p[0], "/individual/display"), "DR ANNE ATTENDING");
    assert_eq!(
        s(&p[0], "/individual/reference"),
        format!("Practitioner?identifier={GMC}|1234567")
    );
    assert_eq!(s(&p[4], "/individual/display"), "ALEX ADMITTING");
    assert!(p[4].pointer("/individual/reference").is_none());

    assert_eq!(s(e, "/reasonCode/0/coding/0/system"), SNOMED);
    assert_eq!(s(e, "/reasonCode/0/coding/0/code"), "1912002");
    assert_eq!(s(e, "/reasonCode/0/text"), "Fall");
}

#[test]
fn pid_2_is_one_more_identifier() {
    let m = map_fixture(FIXTURE, "ZRH01");
    assert_eq!(m.person.nhs_number.as_deref(), Some("9990000034"));
    assert_eq!(
        m.person.local_ids,
        vec![
            ("ZRH01".to_owned(), "RX3333333".to_owned()),
            ("ZRH01OLD".to_owned(), "OLD5555".to_owned()),
        ]
    );
    assert_eq!(
        s(&m.person.patient, "/identifier/2/system"),
        "https://fhir.carerecord.example/Id/ZRH01OLD/patient-id"
    );
    assert_eq!(s(&m.person.patient, "/identifier/2/value"), "OLD5555");

    // An older feed's NHS number in PID-2 alone.
    let only_pid2 = "MSH|^~\\&|PAS|ZRH01|CARERECORD|ZCR01|20260801100000||ADT^A31|C2|P|2.4
EVN|A31|20260801100000
PID|1|9990000018^^^NHS|||||19380412|F
";
    let m = map_text(only_pid2).expect("maps");
    assert_eq!(m.person.nhs_number.as_deref(), Some("9990000018"));
    assert!(m.person.local_ids.is_empty());

    // Checked like PID-3, and the error names PID-2.
    let err = map_text(&only_pid2.replace("9990000018", "9990000019")).expect_err("invalid");
    assert_eq!(err.to_ack_error().field, Some(2));
    let err = map_text(&BASE.replace("PID|1|", "PID|1|9990000034^^^NHS")).expect_err("two");
    assert_eq!(err.to_ack_error().segment, "PID");
}
