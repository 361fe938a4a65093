//! Pathology results over time: DiagnosticReports with their Observations.

use super::{Gen, INTERPRETATION, Src, concept, number, org_ref, reference};
use crate::date::date_time;
use crate::refdata::{self, Analyte};
use crate::rng::Rng;
use crate::{LOINC, UCUM};
use serde_json::{Map, Value, json};

/// A person-specific level for an analyte (so results over time look like one person's).
fn baseline(rng: &mut Rng, an: &Analyte, problems: &[usize]) -> f64 {
    let mut mean = an.mean;
    if problems.contains(&refdata::P_CKD) {
        match an.loinc {
            "14682-9" => mean = 150.0,
            "62238-1" => mean = 38.0,
            "22664-7" => mean = 10.5,
            _ => {}
        }
    }
    if an.loinc == "59261-8" && problems.contains(&refdata::P_DIABETES) {
        mean = 60.0;
    }
    rng.normal(mean, an.sd * 0.6)
}

/// A DiagnosticReport with one Observation per analyte; returns the report's reference.
pub(super) fn lab_report(
    g: &mut Gen<'_>,
    panel: (&str, &str, &[Analyte]),
    levels: &[f64],
    day: i64,
    encounter: Option<&str>,
) -> String {
    let (code, display, analytes) = panel;
    let patient = g.patient.clone();
    let lab = org_ref(&g.l.lab);
    let collected = g.at(day);
    let issued = date_time(day, 20 * 60 + g.rng.range(0, 180));
    let mut results = Vec::new();
    for (an, level) in analytes.iter().zip(levels) {
        let floor = an.mean / 8.0;
        let v = g.rng.normal(*level, an.sd * 0.45).max(floor);
        let value = number(v, an.decimals);
        let rounded: f64 = format!("{v:.prec$}", prec = an.decimals)
            .parse()
            .unwrap_or(v);
        let (ic, idisplay) = match (an.low, an.high) {
            (Some(lo), _) if rounded < lo => ("L", "Low"),
            (_, Some(hi)) if rounded > hi => ("H", "High"),
            _ => ("N", "Normal"),
        };
        let q = |x: f64| json!({"value": number(x, an.decimals), "unit": an.unit, "system": UCUM, "code": an.unit});
        let mut range = Map::new();
        if let Some(lo) = an.low {
            range.insert("low".into(), q(lo));
        }
        if let Some(hi) = an.high {
            range.insert("high".into(), q(hi));
        }
        if an.loinc == "6301-6" {
            range.insert("text".into(), json!("Target range for warfarin (AF)"));
        }
        let mut obs = json!({
            "resourceType": "Observation",
            "status": "final",
            "category": [concept("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory", "Laboratory")],
            "code": concept(LOINC, an.loinc, an.display),
            "subject": reference(&patient),
            "effectiveDateTime": collected.clone(),
            "issued": issued.clone(),
            "performer": [lab.clone()],
            "valueQuantity": {"value": value, "unit": an.unit, "system": UCUM, "code": an.unit},
            "interpretation": [concept(INTERPRETATION, ic, idisplay)],
            "referenceRange": [Value::Object(range)]
        });
        if let (Some(e), Some(o)) = (encounter, obs.as_object_mut()) {
            o.insert("encounter".into(), reference(e));
        }
        results.push(reference(&g.push("obs", Src::Lab, obs)));
    }
    let mut dr = json!({
        "resourceType": "DiagnosticReport",
        "status": "final",
        "category": [concept("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB", "Laboratory")],
        "code": concept(LOINC, code, display),
        "subject": reference(&patient),
        "effectiveDateTime": collected,
        "issued": issued,
        "performer": [lab],
        "result": results
    });
    if let (Some(e), Some(o)) = (encounter, dr.as_object_mut()) {
        o.insert("encounter".into(), reference(e));
    }
    g.push("report", Src::Lab, dr)
}

pub(super) fn levels(g: &mut Gen<'_>, analytes: &[Analyte], problems: &[usize]) -> Vec<f64> {
    analytes
        .iter()
        .map(|a| baseline(&mut g.rng, a, problems))
        .collect()
}

pub(super) fn labs_over_time(g: &mut Gen<'_>, problems: &[usize], warfarin: bool) {
    let ue = levels(g, refdata::UE, problems);
    let fbc = levels(g, refdata::FBC, problems);
    let monitored = g.plan.home.is_some()
        || problems.iter().any(|p| {
            [
                refdata::P_CKD,
                refdata::P_DIABETES,
                refdata::P_HEART_FAILURE,
            ]
            .contains(p)
        });
    let n_ue = if monitored {
        g.rng.range(3, 6)
    } else {
        i64::from(g.rng.chance(0.5))
    };
    for k in 0..n_ue {
        let day = g.today - 20 - k * g.rng.range(100, 170);
        lab_report(g, refdata::PANEL_UE, &ue, day, None);
    }
    let n_fbc = if monitored {
        g.rng.range(1, 3)
    } else {
        i64::from(g.rng.chance(0.5))
    };
    for k in 0..n_fbc {
        let day = g.today - 25 - k * g.rng.range(150, 300);
        lab_report(g, refdata::PANEL_FBC, &fbc, day, None);
    }
    if problems.contains(&refdata::P_DIABETES) {
        let a1c = levels(g, refdata::HBA1C, problems);
        for k in 0..g.rng.range(3, 4) {
            let day = g.today - 30 - k * g.rng.range(170, 200);
            lab_report(g, refdata::PANEL_HBA1C, &a1c, day, None);
        }
    }
    if warfarin {
        let inr = levels(g, refdata::INR, problems);
        for k in 0..g.rng.range(4, 6) {
            let day = g.today - 7 - k * g.rng.range(28, 42);
            lab_report(g, refdata::PANEL_INR, &inr, day, None);
        }
    }
}
