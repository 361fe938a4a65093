//! HL7 v2 over MLLP: acknowledgements and what is stored.

use carerecord_fhir::ResourceType;
use carerecord_store::Channel;
use carerecord_store::ingest::{self, DeadLetterStatus};
use serde_json::Value;
use tokio::net::TcpStream;

use super::{NHS, edited, exchange, fixture, msa, search, segment, spawn_app};

fn reference(v: &Value) -> &str {
    v.get("reference").and_then(Value::as_str).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_is_stored_then_acknowledged_and_a_resend_gets_the_same_ack_and_is_stored_once()
 {
    let app = spawn_app().await;
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    let a01 = fixture("adt_a01_admit");
    let first = exchange(&mut conn, &a01).await;
    assert_eq!(msa(&first), ("AA".to_owned(), "ZRH01-0001".to_owned()));

    let patients = search(
        &app.store,
        ResourceType::Patient,
        &[("identifier", &format!("{NHS}|9990000018"))],
    )
    .await;
    assert_eq!(patients.len(), 1);
    let pid = patients[0]["id"].as_str().unwrap().to_owned();
    let encounters = search(
        &app.store,
        ResourceType::Encounter,
        &[("subject", &format!("Patient/{pid}"))],
    )
    .await;
    assert_eq!(encounters.len(), 1);
    // The hospital is resolved to its Organization, so the stay is a care relationship.
    assert_eq!(
        reference(&encounters[0]["serviceProvider"]),
        "Organization/org-zrh01"
    );

    // The audit entry names the feed, the channel and the person.
    let entries = app.store.audit_entries(0, 100).await.unwrap();
    let e = entries
        .iter()
        .find(|e| e.record.channel == Channel::Hl7)
        .expect("an hl7 audit entry");
    assert_eq!(e.record.patient_ids, vec![pid.clone()]);
    assert_eq!(e.record.agent.organisation_id.as_deref(), Some("org-zrh01"));

    // Resent (on another connection): the same bytes back, nothing stored twice.
    let mut again = TcpStream::connect(app.addr).await.unwrap();
    let second = exchange(&mut again, &a01).await;
    assert_eq!(second, first);
    assert_eq!(
        search(&app.store, ResourceType::Patient, &[]).await.len(),
        1
    );
    assert_eq!(
        search(&app.store, ResourceType::Encounter, &[]).await.len(),
        1
    );
    let hl7_entries = app
        .store
        .audit_entries(0, 100)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.record.channel == Channel::Hl7)
        .count();
    assert_eq!(hl7_entries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discharge_finishes_the_admissions_encounter_and_many_messages_share_a_connection() {
    let app = spawn_app().await;
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    for (name, id) in [
        ("adt_a01_admit", "ZRH01-0001"),
        ("adt_a03_discharge_to_care_home", "ZRH01-0003"),
    ] {
        let ack = exchange(&mut conn, &fixture(name)).await;
        assert_eq!(msa(&ack), ("AA".to_owned(), id.to_owned()), "{name}");
    }
    let encounters = search(&app.store, ResourceType::Encounter, &[]).await;
    assert_eq!(
        encounters.len(),
        1,
        "the discharge upserts the admission's Encounter"
    );
    assert_eq!(encounters[0]["status"], "finished");
    assert_eq!(encounters[0]["meta"]["versionId"], "2");
    // The care home the person went to is named by its ODS code (a logical reference: R4
    // wants a Location there).
    let destination = &encounters[0]["hospitalization"]["destination"];
    assert_eq!(destination["identifier"]["value"], "ZCH01", "{destination}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_sender_is_refused_with_ar_naming_msh_and_nothing_is_kept() {
    let app = spawn_app().await;
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    let stranger = edited(&fixture("adt_a01_admit"), "|PAS|ZRH01|", "|PAS|ZXX99|");
    let ack = exchange(&mut conn, &stranger).await;
    assert_eq!(msa(&ack), ("AR".to_owned(), "ZRH01-0001".to_owned()));
    let err = segment(&ack, "ERR").expect("an ERR segment");
    assert!(err.contains("MSH^1^4"), "{err}");
    assert!(
        search(&app.store, ResourceType::Patient, &[])
            .await
            .is_empty()
    );
    assert!(
        ingest::list_dead_letters(app.store.as_ref(), None, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_nhs_number_is_answered_ae_naming_pid_3_and_kept_whole_as_a_dead_letter() {
    let app = spawn_app().await;
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    let bad = fixture("nasty_invalid_nhs_number");
    let ack = exchange(&mut conn, &bad).await;
    assert_eq!(msa(&ack), ("AE".to_owned(), "ZRH01-N1".to_owned()));
    let err = segment(&ack, "ERR").expect("an ERR segment");
    assert!(err.contains("PID^1^3"), "{err}");
    assert!(
        search(&app.store, ResourceType::Patient, &[])
            .await
            .is_empty()
    );
    let letters =
        ingest::list_dead_letters(app.store.as_ref(), Some(DeadLetterStatus::Open), 0, 10)
            .await
            .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].raw, bad);
    assert!(letters[0].reason.contains("PID-3"), "{}", letters[0].reason);

    // Replaying it unchanged fails again: it stays open, with one more attempt.
    let r = app.pipeline.replay(letters[0].id).await.unwrap();
    assert_eq!(r.code, carerecord_hl7::AckCode::AE);
    let d = ingest::dead_letter(app.store.as_ref(), letters[0].id)
        .await
        .unwrap();
    assert_eq!((d.status, d.attempts), (DeadLetterStatus::Open, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_replayed_after_its_sender_is_registered_is_stored_and_resolved() {
    let app = spawn_app().await;
    // A message the mapping refuses (no PID) is kept; the same bytes fixed upstream would be
    // resent — here the dead letter is replayed once the problem is fixed on our side: a
    // garbled message is unparseable and stays, a valid one replays to AA.
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    let truncated = fixture("nasty_truncated_msh");
    let ack = exchange(&mut conn, &truncated).await;
    assert_eq!(msa(&ack).0, "AR");
    let letters =
        ingest::list_dead_letters(app.store.as_ref(), Some(DeadLetterStatus::Open), 0, 10)
            .await
            .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].raw, truncated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_and_their_correction_upsert_the_same_observation() {
    let app = spawn_app().await;
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(
        msa(&exchange(&mut conn, &fixture("adt_a01_admit")).await).0,
        "AA"
    );
    assert_eq!(
        msa(&exchange(&mut conn, &fixture("oru_r01_results")).await).0,
        "AA"
    );
    let before = search(&app.store, ResourceType::Observation, &[])
        .await
        .len();
    assert!(before >= 10, "{before} observations");
    let reports = search(&app.store, ResourceType::DiagnosticReport, &[]).await;
    assert_eq!(reports.len(), 2);
    // Every result a report lists resolves to a stored Observation.
    for r in &reports {
        for res in r["result"].as_array().unwrap() {
            assert!(reference(res).starts_with("Observation/"), "{res}");
        }
    }
    // The lab's results land on the person the hospital admitted (same verified NHS number).
    let patients = search(&app.store, ResourceType::Patient, &[]).await;
    assert_eq!(patients.len(), 1);

    assert_eq!(
        msa(&exchange(&mut conn, &fixture("oru_r01_correction")).await).0,
        "AA"
    );
    let after = search(&app.store, ResourceType::Observation, &[]).await;
    assert_eq!(
        after.len(),
        before,
        "the correction replaces, it does not add"
    );
    let potassium: Vec<&Value> = after
        .iter()
        .filter(|o| o["code"]["coding"][0]["code"] == "2823-3")
        .collect();
    assert_eq!(potassium.len(), 1);
    assert_eq!(potassium[0]["status"], "amended");
    assert_eq!(potassium[0]["meta"]["versionId"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_moves_the_old_records_to_the_survivor() {
    let app = spawn_app().await;
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    // The hospital first knew the person under another number, without an NHS number.
    let old = edited(
        &fixture("adt_a01_admit"),
        "9990000018^^^NHS^NH~RX1234567^^^ZRH01^MR||TESTPERSON^ALICE^MAY",
        "RX7654321^^^ZRH01^MR||TESTPERSON^ALISON^MAY",
    );
    let old = edited(&old, "|ZRH01-0001|", "|ZRH01-0100|");
    let old = edited(&old, "V2026-0001", "V2025-0100");
    assert_eq!(msa(&exchange(&mut conn, &old).await).0, "AA");
    assert_eq!(
        msa(&exchange(&mut conn, &fixture("adt_a01_admit")).await).0,
        "AA"
    );
    let patients = search(&app.store, ResourceType::Patient, &[]).await;
    assert_eq!(patients.len(), 2, "an uncertain match is a separate record");
    let reviews = ingest::list_reviews(app.store.as_ref(), None, 0, 10)
        .await
        .unwrap();
    assert_eq!(reviews.len(), 1, "… with a review item");

    assert_eq!(
        msa(&exchange(&mut conn, &fixture("adt_a40_merge")).await).0,
        "AA"
    );
    let survivor = search(
        &app.store,
        ResourceType::Patient,
        &[("identifier", &format!("{NHS}|9990000018"))],
    )
    .await;
    let survivor_id = survivor[0]["id"].as_str().unwrap().to_owned();
    let encounters = search(&app.store, ResourceType::Encounter, &[]).await;
    assert_eq!(encounters.len(), 2);
    for e in &encounters {
        assert_eq!(reference(&e["subject"]), format!("Patient/{survivor_id}"));
    }
    let merged: Vec<Value> = search(&app.store, ResourceType::Patient, &[])
        .await
        .into_iter()
        .filter(|p| p["id"] != survivor_id.as_str())
        .collect();
    assert_eq!(merged[0]["active"], false);
    assert_eq!(merged[0]["link"][0]["type"], "replaced-by");
    assert_eq!(
        reference(&merged[0]["link"][0]["other"]),
        format!("Patient/{survivor_id}")
    );
    // A later message under the old number reaches the survivor.
    let later = edited(&old, "|ZRH01-0100|", "|ZRH01-0101|");
    assert_eq!(msa(&exchange(&mut conn, &later).await).0, "AA");
    let encounters = search(
        &app.store,
        ResourceType::Encounter,
        &[("subject", &format!("Patient/{survivor_id}"))],
    )
    .await;
    assert_eq!(encounters.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_with_messages_in_flight_are_each_acknowledged_once_in_order() {
    let app = spawn_app().await;
    let base = fixture("adt_a28_add_person");
    let mut tasks = Vec::new();
    for c in 0..4 {
        let addr = app.addr;
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = TcpStream::connect(addr).await.unwrap();
            // Write 20 messages without waiting, then read the 20 ACKs.
            let mut ids = Vec::new();
            let mut all = Vec::new();
            for i in 0..20 {
                let id = format!("C{c}-{i}");
                let m = edited(&base, "|ZRH01-0028|", &format!("|{id}|"));
                let m = edited(&m, "RX2222222", &format!("RX{c}{i:05}"));
                all.extend_from_slice(&[0x0B]);
                all.extend_from_slice(&m);
                all.extend_from_slice(&[0x1C, 0x0D]);
                ids.push(id);
            }
            tokio::io::AsyncWriteExt::write_all(&mut conn, &all)
                .await
                .unwrap();
            for id in ids {
                let ack = super::read_frame(&mut conn).await;
                assert_eq!(msa(&ack), ("AA".to_owned(), id));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let logged = ingest::logged_message(app.store.as_ref(), "hl7-zrh01-pas", "C3-19")
        .await
        .unwrap();
    assert!(logged.is_some());
}

/// Messages that arrive together are stored in one transaction with their log rows written
/// together; a refused one among them (an A40 whose MRG carries an invalid NHS number) leaves
/// nothing of itself but its dead letter, and the others are stored and acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_among_others_leaves_nothing_and_the_rest_of_its_batch_is_stored() {
    let app = spawn_app().await;
    let good_numbers = [
        "9990001006",
        "9990001014",
        "9990001022",
        "9990001030",
        "9990001049",
        "9990001057",
    ];
    let mut messages: Vec<Vec<u8>> = good_numbers
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let m = edited(&fixture("adt_a28_add_person"), "9990000026", n);
            let m = edited(&m, "RX2222222", &format!("RX300000{i}"));
            edited(&m, "|ZRH01-0028|", &format!("|ZRH01-B{i}|"))
        })
        .collect();
    // 9990000019 fails the Modulus 11 check.
    let bad = edited(
        &fixture("adt_a40_merge"),
        "MRG|RX7654321^^^ZRH01^MR",
        "MRG|9990000019^^^NHS^NH",
    );
    messages.insert(3, bad);
    // Submitted at once, so that they queue for the writer together.
    let replies = futures::future::join_all(messages.iter().map(|m| app.pipeline.handle(m))).await;
    let codes: Vec<&str> = replies.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(codes, ["AA", "AA", "AA", "AE", "AA", "AA", "AA"]);
    assert!(replies[3].dead_letter.is_some());

    let patients = search(&app.store, ResourceType::Patient, &[]).await;
    let mut numbers: Vec<String> = patients
        .iter()
        .flat_map(|p| p["identifier"].as_array().cloned().unwrap_or_default())
        .filter(|i| i["system"] == NHS)
        .filter_map(|i| i["value"].as_str().map(str::to_owned))
        .collect();
    numbers.sort();
    // Nothing of the A40, not even its own PID person (9990000018).
    assert_eq!(numbers, good_numbers);
    let pas = ingest::systems(app.store.as_ref())
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.msh_application == "PAS")
        .unwrap();
    for i in 0..good_numbers.len() {
        let control = format!("ZRH01-B{i}");
        let logged = ingest::logged_message(app.store.as_ref(), &pas.id, &control)
            .await
            .unwrap();
        assert_eq!(
            logged.map(|l| l.ack_code).as_deref(),
            Some("AA"),
            "{control}"
        );
    }
    // The refused one is logged with its AE, so a resend gets the same answer.
    assert_eq!(
        ingest::logged_message(app.store.as_ref(), &pas.id, "ZRH01-0040")
            .await
            .unwrap()
            .map(|l| l.ack_code)
            .as_deref(),
        Some("AE")
    );
    let letters =
        ingest::list_dead_letters(app.store.as_ref(), Some(DeadLetterStatus::Open), 0, 10)
            .await
            .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].control_id.as_deref(), Some("ZRH01-0040"));
    // Resent after the batch: the stored ones get their ACK again, and are stored once.
    let again = app.pipeline.handle(&messages[0]).await;
    assert_eq!(again.ack, replies[0].ack);
    assert_eq!(
        search(&app.store, ResourceType::Patient, &[]).await.len(),
        good_numbers.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_cannot_be_mapped_is_logged_and_dead_lettered_with_ae_naming_the_field_and_loses_nothing_stored_before()
 {
    let app = spawn_app().await;
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(
        msa(&exchange(&mut conn, &fixture("adt_a01_admit")).await).0,
        "AA"
    );
    let before_patients = search(&app.store, ResourceType::Patient, &[]).await;
    let before_encounters = search(&app.store, ResourceType::Encounter, &[]).await;
    assert_eq!((before_patients.len(), before_encounters.len()), (1, 1));

    // An update for the same person and stay whose admission time (PV1-44) is not a date.
    let bad = edited(
        &fixture("adt_a08_update"),
        "20260715091500",
        "20261345091500",
    );
    let ack = exchange(&mut conn, &bad).await;
    assert_eq!(msa(&ack), ("AE".to_owned(), "ZRH01-0008".to_owned()));
    let err = segment(&ack, "ERR").expect("an ERR segment");
    assert!(err.contains("PV1^1^44"), "{err}");

    // In the message log with its outcome and the ACK sent…
    let logged = ingest::logged_message(app.store.as_ref(), "hl7-zrh01-pas", "ZRH01-0008")
        .await
        .unwrap()
        .expect("the refused message is in the message log");
    assert_eq!(logged.ack_code, "AE");
    assert_eq!(logged.ack, ack);
    assert_eq!(logged.patient_id, None);
    // … and kept whole as a dead letter with the reason.
    let letters =
        ingest::list_dead_letters(app.store.as_ref(), Some(DeadLetterStatus::Open), 0, 10)
            .await
            .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].raw, bad);
    assert_eq!(letters[0].control_id.as_deref(), Some("ZRH01-0008"));
    assert!(
        letters[0].reason.contains("PV1-44"),
        "{}",
        letters[0].reason
    );

    // What was stored before is untouched: same versions, same content.
    assert_eq!(
        search(&app.store, ResourceType::Patient, &[]).await,
        before_patients
    );
    assert_eq!(
        search(&app.store, ResourceType::Encounter, &[]).await,
        before_encounters
    );

    // Resent: the same ACK from the log, and not kept a second time.
    let mut again = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(exchange(&mut again, &bad).await, ack);
    assert_eq!(
        ingest::list_dead_letters(app.store.as_ref(), None, 0, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // Replayed unchanged it fails again: still AE in the log, the dead letter still open.
    let r = app.pipeline.replay(letters[0].id).await.unwrap();
    assert_eq!(r.code, carerecord_hl7::AckCode::AE);
    let logged = ingest::logged_message(app.store.as_ref(), "hl7-zrh01-pas", "ZRH01-0008")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(logged.ack_code, "AE");
    let d = ingest::dead_letter(app.store.as_ref(), letters[0].id)
        .await
        .unwrap();
    assert_eq!((d.status, d.attempts), (DeadLetterStatus::Open, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_in_a_batch_with_good_ones_is_refused_alone() {
    let app = spawn_app().await;
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    // Written back to back so they share the writer's transactions.
    let good = fixture("adt_a01_admit");
    let bad = edited(
        &fixture("adt_a08_update"),
        "20260715091500",
        "20261345091500",
    );
    let later = edited(
        &fixture("adt_a28_add_person"),
        "|ZRH01-0028|",
        "|ZRH01-0029|",
    );
    let mut all = Vec::new();
    for m in [&good, &bad, &later] {
        all.push(0x0B);
        all.extend_from_slice(m);
        all.extend_from_slice(&[0x1C, 0x0D]);
    }
    tokio::io::AsyncWriteExt::write_all(&mut conn, &all)
        .await
        .unwrap();
    let codes: Vec<String> = [
        super::read_frame(&mut conn).await,
        super::read_frame(&mut conn).await,
        super::read_frame(&mut conn).await,
    ]
    .iter()
    .map(|a| msa(a).0)
    .collect();
    assert_eq!(codes, ["AA", "AE", "AA"]);
    assert_eq!(
        search(&app.store, ResourceType::Patient, &[]).await.len(),
        2
    );
    for (id, code) in [
        ("ZRH01-0001", "AA"),
        ("ZRH01-0008", "AE"),
        ("ZRH01-0029", "AA"),
    ] {
        let logged = ingest::logged_message(app.store.as_ref(), "hl7-zrh01-pas", id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id} is logged"));
        assert_eq!(logged.ack_code, code, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_whose_failure_was_logged_is_applied_when_replayed_and_its_log_row_becomes_aa()
 {
    use carerecord_store::ingest::{IngestOp, MessageRecord};
    let app = spawn_app().await;
    // As a message refused by an earlier version of the mapping would have left things: its
    // AE in the log, its bytes in a dead letter. The bytes map now (the fix).
    let a01 = fixture("adt_a01_admit");
    let mut tx = app.store.begin().await.unwrap();
    ingest::tx_do(
        tx.as_mut(),
        IngestOp::ReplaceMessage(MessageRecord {
            sender: "hl7-zrh01-pas".into(),
            control_id: "ZRH01-0001".into(),
            received_at: 1,
            ack_code: "AE".into(),
            ack: b"MSH|^~\\&|CARERECORD\rMSA|AE|ZRH01-0001\r".to_vec(),
            patient_id: None,
        }),
    )
    .await
    .unwrap();
    let id = ingest::tx_id(
        tx.as_mut(),
        IngestOp::PutDeadLetter {
            received_at: 1,
            sender: Some("hl7-zrh01-pas".into()),
            control_id: Some("ZRH01-0001".into()),
            reason: "PV1-44: an old bug".into(),
            raw: a01.clone(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // Sent again over the wire it is answered from the log, not applied.
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(msa(&exchange(&mut conn, &a01).await).0, "AE");
    assert!(
        search(&app.store, ResourceType::Encounter, &[])
            .await
            .is_empty()
    );

    let r = app.pipeline.replay(id).await.unwrap();
    assert_eq!(r.code, carerecord_hl7::AckCode::AA);
    assert_eq!(
        search(&app.store, ResourceType::Encounter, &[]).await.len(),
        1
    );
    let logged = ingest::logged_message(app.store.as_ref(), "hl7-zrh01-pas", "ZRH01-0001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(logged.ack_code, "AA");
    assert_eq!(logged.ack, r.ack);
    assert!(logged.patient_id.is_some());
    let d = ingest::dead_letter(app.store.as_ref(), id).await.unwrap();
    assert_eq!(d.status, DeadLetterStatus::Replayed);
    // A resend now gets the new ACK.
    assert_eq!(exchange(&mut conn, &a01).await, r.ack);
}
