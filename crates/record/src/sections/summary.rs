//! The summary: what a nurse or carer needs first.

use serde_json::Value;
use time::Duration;

use super::{
    active_status, date_or, discharge, empty, entered_in_error, medicines, paragraphs, results,
    source_line, source_words, words,
};
use crate::dates;
use crate::html::Html;
use crate::index::{Index, Item};
use crate::read::{self, SNOMED, str_of};

/// Advance care planning: ReSPECT, advance care plan, end-of-life coordination summary.
pub(super) const ADVANCE_CARE_PLAN_CODES: [&str; 3] =
    ["1382601000000107", "736366004", "861421000000109"];

pub(super) fn is_advance_care_plan(v: &Value) -> bool {
    ADVANCE_CARE_PLAN_CODES
        .iter()
        .any(|c| read::has_code(v.get("category"), SNOMED, c))
        || words(v, "title").is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            t.contains("respect") || t.contains("advance care") || t.contains("end of life")
        })
}

fn is_dnacpr(v: &Value) -> bool {
    read::has_code(v.get("code"), SNOMED, "304253006")
        || read::has_code(v.get("code"), SNOMED, "450476008")
        || words(v, "code").is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            t.contains("dnacpr") || t.contains("resuscitat")
        })
}

pub(super) fn render(h: &mut Html, idx: &Index<'_>) {
    alerts_and_legal(h, idx);
    allergies(h, idx);
    problems(h, idx);
    medicines::current_table(h, idx, "Current medicines");
    latest_discharge(h, idx);
    if !idx.restricted() {
        results::recent_abnormal(h, idx);
    }
    recent_encounters(h, idx);
    sources(h, idx);
}

/// Where the record comes from and when each source last sent anything: for a source with an
/// HL7 v2 feed, the feed's last message (whether the hospital's feed is alive), else the
/// newest of this person's items from it.
fn sources(h: &mut Html, idx: &Index<'_>) {
    let mut list: Vec<&crate::sources::Source> = idx.sources.list.iter().collect();
    if list.is_empty() {
        return;
    }
    list.sort_by(|a, b| a.name.cmp(&b.name));
    h.raw("<h2 class=\"nhsuk-heading-m\">Where this record comes from</h2><table class=\"nhsuk-table cr-sources\"><caption class=\"nhsuk-table__caption nhsuk-u-visually-hidden\">Sources and when each last sent anything</caption><thead class=\"nhsuk-table__head\"><tr class=\"nhsuk-table__row\"><th scope=\"col\" class=\"nhsuk-table__header\">Source</th><th scope=\"col\" class=\"nhsuk-table__header\">Last update</th></tr></thead><tbody class=\"nhsuk-table__body\">");
    for s in list {
        h.raw("<tr class=\"nhsuk-table__row\"><td class=\"nhsuk-table__cell\">")
            .text(&s.name)
            .raw("</td><td class=\"nhsuk-table__cell\">");
        match s.last_received {
            Some(t) => {
                h.text(&dates::short_time(t)).raw(if s.feed {
                    " (last message on its feed)"
                } else {
                    " (newest item for this person)"
                });
            }
            None => {
                h.raw("Not known");
            }
        }
        super::stale_tag(h, s, idx.now);
        h.raw("</td></tr>");
    }
    h.raw("</tbody></table>");
}

fn alerts_and_legal(h: &mut Html, idx: &Index<'_>) {
    let flags: Vec<&Item<'_>> = idx
        .of("Flag")
        .iter()
        .filter(|f| active_status(f.v, "status") && !entered_in_error(f.v))
        .collect();
    let plans: Vec<&Item<'_>> = idx
        .of("CarePlan")
        .iter()
        .filter(|c| is_advance_care_plan(c.v) && active_status(c.v, "status"))
        .collect();
    if flags.is_empty() && plans.is_empty() {
        h.raw("<h2 class=\"nhsuk-heading-m\">Alerts and legal</h2>");
        empty(
            h,
            "No alerts, DNACPR decision or advance care plan recorded.",
        );
        return;
    }
    h.raw("<div class=\"nhsuk-warning-callout cr-alerts\"><h2 class=\"nhsuk-warning-callout__label\"><span class=\"nhsuk-u-visually-hidden\">Important: </span>Alerts and legal</h2>");
    if !flags.is_empty() {
        h.raw("<ul class=\"nhsuk-list\">");
        // DNACPR first: it is the one that matters in an emergency.
        let (dnacpr, other): (Vec<&&Item<'_>>, Vec<&&Item<'_>>) =
            flags.iter().partition(|f| is_dnacpr(f.v));
        for f in dnacpr.into_iter().chain(other) {
            h.raw("<li><strong>")
                .text(&words(f.v, "code").unwrap_or_else(|| "Alert".to_owned()))
                .raw("</strong>");
            if is_dnacpr(f.v) {
                h.raw(" <strong class=\"nhsuk-tag nhsuk-tag--red\">DNACPR</strong>");
            }
            source_line(h, idx, f);
            h.raw("</li>");
        }
        h.raw("</ul>");
    }
    for p in plans {
        h.raw("<h3 class=\"nhsuk-heading-s\">")
            .text(
                &words(p.v, "title")
                    .or_else(|| read::concept_at(p.v, "category"))
                    .unwrap_or_else(|| "Advance care plan".to_owned()),
            )
            .raw("</h3>");
        match str_of(p.v, "description") {
            Some(d) => paragraphs(h, &[d.to_owned()]),
            None => paragraphs(h, &crate::narrative::of(p.v)),
        }
        source_line(h, idx, p);
    }
    h.raw("</div>");
}

fn allergies(h: &mut Html, idx: &Index<'_>) {
    h.raw("<h2 class=\"nhsuk-heading-m\">Allergies and adverse reactions</h2>");
    let list: Vec<&Item<'_>> = idx
        .of("AllergyIntolerance")
        .iter()
        .filter(|a| {
            !entered_in_error(a.v)
                && !matches!(
                    read::status_code(a.v, "verificationStatus").as_deref(),
                    Some("refuted")
                )
                && !matches!(
                    read::status_code(a.v, "clinicalStatus").as_deref(),
                    Some("inactive" | "resolved")
                )
        })
        .collect();
    if list.is_empty() {
        empty(
            h,
            "No allergy information recorded. Check with the GP practice before giving a new medicine.",
        );
        return;
    }
    h.raw("<table class=\"nhsuk-table\"><caption class=\"nhsuk-table__caption nhsuk-u-visually-hidden\">Allergies and adverse reactions</caption><thead class=\"nhsuk-table__head\"><tr class=\"nhsuk-table__row\"><th scope=\"col\" class=\"nhsuk-table__header\">Allergy or intolerance</th><th scope=\"col\" class=\"nhsuk-table__header\">Reaction</th><th scope=\"col\" class=\"nhsuk-table__header\">Severity</th><th scope=\"col\" class=\"nhsuk-table__header\">Source</th></tr></thead><tbody class=\"nhsuk-table__body\">");
    for a in list {
        let reactions = read::arr(a.v, "reaction");
        let manifestations: Vec<String> = reactions
            .iter()
            .flat_map(|r| read::arr(r, "manifestation"))
            .filter_map(read::concept)
            .collect();
        let severity = reactions
            .iter()
            .filter_map(|r| str_of(r, "severity"))
            .max_by_key(|s| match *s {
                "severe" => 3,
                "moderate" => 2,
                _ => 1,
            });
        h.raw("<tr class=\"nhsuk-table__row\"><td class=\"nhsuk-table__cell\"><strong>")
            .text(&words(a.v, "code").unwrap_or_else(|| "Not named".to_owned()))
            .raw("</strong>");
        if str_of(a.v, "criticality") == Some("high") {
            h.raw(" <strong class=\"nhsuk-tag nhsuk-tag--red\">High risk</strong>");
        }
        h.raw("</td><td class=\"nhsuk-table__cell\">")
            .text(&if manifestations.is_empty() {
                "Not recorded".to_owned()
            } else {
                manifestations.join(", ")
            })
            .raw("</td><td class=\"nhsuk-table__cell\">")
            .text(&severity.map_or_else(|| "Not recorded".to_owned(), super::capitalise))
            .raw("</td><td class=\"nhsuk-table__cell\">");
        source_words(h, idx, a);
        h.raw("</td></tr>");
    }
    h.raw("</tbody></table>");
}

fn problems(h: &mut Html, idx: &Index<'_>) {
    h.raw("<h2 class=\"nhsuk-heading-m\">Active problems</h2>");
    let list: Vec<&Item<'_>> = idx
        .of("Condition")
        .iter()
        .filter(|c| {
            !entered_in_error(c.v)
                && matches!(
                    read::status_code(c.v, "clinicalStatus").as_deref(),
                    Some("active" | "recurrence" | "relapse")
                )
        })
        .collect();
    if list.is_empty() {
        empty(h, "No active problems recorded.");
        return;
    }
    h.raw("<dl class=\"nhsuk-summary-list\">");
    for c in list {
        h.raw("<div class=\"nhsuk-summary-list__row\"><dt class=\"nhsuk-summary-list__key\">")
            .text(&words(c.v, "code").unwrap_or_else(|| "Problem not named".to_owned()))
            .raw("</dt><dd class=\"nhsuk-summary-list__value\">");
        if let Some(onset) =
            read::date_at(c.v, "onsetDateTime").or_else(|| read::date_at(c.v, "onsetPeriod"))
        {
            h.raw("Since ").text(&crate::dates::short(onset)).raw(". ");
        }
        source_words(h, idx, c);
        h.raw("</dd></div>");
    }
    h.raw("</dl>");
}

fn latest_discharge(h: &mut Html, idx: &Index<'_>) {
    let Some(c) = idx.latest_discharge() else {
        return;
    };
    h.raw("<div class=\"nhsuk-card cr-latest-discharge\"><div class=\"nhsuk-card__content\"><h2 class=\"nhsuk-card__heading nhsuk-heading-m\">Latest discharge: plan and medicine changes</h2>");
    source_line(h, idx, c);
    discharge::restricted_sections(h, idx, c, "h3");
    h.raw("</div></div>");
}

fn recent_encounters(h: &mut Html, idx: &Index<'_>) {
    let since = idx.now - Duration::days(365);
    let list: Vec<&Item<'_>> = idx
        .of("Encounter")
        .iter()
        .filter(|e| e.date.is_some_and(|d| d >= since) && !entered_in_error(e.v))
        .take(5)
        .collect();
    if list.is_empty() {
        return;
    }
    h.raw("<h2 class=\"nhsuk-heading-m\">Recent encounters</h2><ul class=\"nhsuk-list nhsuk-list--bullet\">");
    for e in list {
        h.raw("<li><strong>")
            .text(&date_or(e.date, "Date not recorded"))
            .raw("</strong>: ")
            .text(&super::clinical::encounter_kind(e.v))
            .raw(". ");
        source_words(h, idx, e);
        h.raw("</li>");
    }
    h.raw("</ul>");
}
