//! Alerts and care plans.

use super::{Gen, Person, Src, category, concept, narrative, org_ref, reference};
use crate::SNOMED;
use crate::date::date;
use crate::refdata;
use serde_json::json;

/// Alerts (Flags) and care plans: falls risk, ReSPECT and DNACPR, advance and end-of-life care
/// plans, and an electronic care home's own plan. Returns the alert and the legal references.
pub(super) fn alerts_and_care_plans(
    g: &mut Gen<'_>,
    p: &Person,
    problems: &[usize],
    moved_in: i64,
    condition_refs: &[(String, &str)],
) -> (Vec<String>, Vec<String>) {
    let patient_ref = g.patient.clone();
    let resident = g.plan.home.is_some();
    let mut alert_refs = Vec::new();
    let mut legal_refs = Vec::new();
    let home_src = match g.home() {
        Some(h) if h.electronic => Src::Home,
        _ => Src::Gp,
    };
    if problems.contains(&refdata::P_FALLS) {
        let start = g.days_ago(30, 700);
        let author = org_ref(g.org(home_src));
        let body = json!({
            "resourceType": "Flag",
            "status": "active",
            "category": category("http://terminology.hl7.org/CodeSystem/flag-category", "safety", "Safety"),
            "code": concept(SNOMED, "129839007", "At risk for falls"),
            "subject": reference(&patient_ref),
            "period": {"start": date(start)},
            "author": author
        });
        alert_refs.push(g.push("flag", home_src, body));
    }
    if resident || p.age >= 80 {
        let respect = g.rng.chance(if resident { 0.65 } else { 0.15 });
        if respect {
            let start = g.days_ago(20, 900);
            let dnacpr = g.rng.chance(0.7);
            let cpr = if dnacpr {
                "CPR is not recommended (DNACPR); a DNACPR form is in place."
            } else {
                "CPR attempts recommended."
            };
            let focus = g.rng.pick(
                &[
                    "Prioritise comfort; hospital admission only if comfort cannot be achieved at the care home.",
                    "Balance of life-sustaining treatment and comfort: ward-based treatment, not intensive care.",
                    "Prioritise sustaining life: all appropriate treatment including hospital admission.",
                ],
                "Prioritise comfort.",
            );
            let gp = org_ref(g.practice());
            let body = json!({
                "resourceType": "CarePlan",
                "text": narrative(&[format!("ReSPECT plan. {focus} {cpr}")]),
                "status": "active",
                "intent": "plan",
                "category": [concept(SNOMED, "1382601000000107", "ReSPECT (Recommended Summary Plan for Emergency Care and Treatment)")],
                "title": "ReSPECT plan",
                "description": format!("{focus} {cpr}"),
                "subject": reference(&patient_ref),
                "period": {"start": date(start)},
                "created": date(start),
                "author": gp
            });
            legal_refs.push(g.push("careplan", Src::Gp, body));
            if dnacpr {
                let author = org_ref(g.practice());
                let body = json!({
                    "resourceType": "Flag",
                    "status": "active",
                    "category": category("http://terminology.hl7.org/CodeSystem/flag-category", "advance-directive", "Advance Directive"),
                    "code": concept(SNOMED, "304253006", "Not for resuscitation"),
                    "subject": reference(&patient_ref),
                    "period": {"start": date(start)},
                    "author": author
                });
                let r = g.push("flag", Src::Gp, body);
                alert_refs.push(r.clone());
                legal_refs.push(r);
            }
        }
        if g.rng.chance(if resident { 0.3 } else { 0.05 }) {
            let start = g.days_ago(20, 900);
            let eol = resident && g.rng.chance(0.15);
            let (code, display, title, desc) = if eol {
                (
                    "861421000000109",
                    "End of life care coordination summary",
                    "End of life care coordination summary",
                    "Preferred place of death: the care home. Anticipatory medicines prescribed and in the home. Family to be called at any time.",
                )
            } else {
                (
                    "736366004",
                    "Advance care plan",
                    "Advance care plan",
                    "Wishes to stay at the care home if unwell; daughter holds lasting power of attorney for health and welfare; likes music and the garden.",
                )
            };
            let gp = org_ref(g.practice());
            let body = json!({
                "resourceType": "CarePlan",
                "text": narrative(&[desc.to_owned()]),
                "status": "active",
                "intent": "plan",
                "category": [concept(SNOMED, code, display)],
                "title": title,
                "description": desc,
                "subject": reference(&patient_ref),
                "period": {"start": date(start)},
                "created": date(start),
                "author": gp
            });
            legal_refs.push(g.push("careplan", Src::Gp, body));
        }
    }
    if let Some(home) = g.home()
        && home.electronic
    {
        let start = moved_in + 2;
        // The home reviews the plan every four weeks and records it afresh: `created` is the
        // latest review, so about a quarter of these plans were written in the last week.
        let reviewed = start + (g.today - start).max(0) / 28 * 28;
        let author = org_ref(&home.org);
        let mut activities = vec![
            "Support with washing and dressing each morning",
            "Food and fluid chart; weigh monthly (MUST score)",
        ];
        if problems.contains(&refdata::P_FALLS) {
            activities.push("Walking frame within reach; sensor mat at night; hourly checks");
        }
        if problems.contains(&refdata::P_DEMENTIA) {
            activities.push("Reassure and re-orientate; life story book in room");
        }
        if home.nursing {
            activities.push("Reposition every four hours; pressure area care");
        }
        let body = json!({
            "resourceType": "CarePlan",
            "text": narrative(&activities.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>()),
            "status": "active",
            "intent": "plan",
            "category": [concept(SNOMED, "734163000", "Care plan")],
            "title": "Personal care and support plan",
            "subject": reference(&patient_ref),
            "period": {"start": date(start)},
            "created": date(reviewed),
            "author": author,
            "addresses": condition_refs.iter().map(|(r, _)| reference(r)).collect::<Vec<_>>(),
            "activity": activities.iter().map(|a| json!({"detail": {"status": "in-progress", "description": a}})).collect::<Vec<_>>()
        });
        g.push("careplan", Src::Home, body);
    }
    (alert_refs, legal_refs)
}
