//! Reports, problems and history, care plans, encounters.

use serde_json::Value;

use super::{
    active_status, capitalise, date_or, empty, entered_in_error, paragraphs, source_line,
    source_words, words,
};
use crate::html::Html;
use crate::index::{Index, Item};
use crate::narrative;
use crate::read::{self, str_of};

fn is_lab_report(v: &Value) -> bool {
    let cat = v.get("category");
    read::has_any_code(cat, "LAB")
        || read::has_any_code(cat, "laboratory")
        || read::has_any_code(cat, "HM")
        || read::has_any_code(cat, "CH")
}

pub(super) fn reports(h: &mut Html, idx: &Index<'_>) {
    h.raw("<h2 class=\"nhsuk-heading-m\">Diagnostic reports</h2>");
    let list: Vec<&Item<'_>> = idx
        .of("DiagnosticReport")
        .iter()
        .filter(|r| !is_lab_report(r.v) && !entered_in_error(r.v))
        .collect();
    if list.is_empty() {
        empty(
            h,
            "No imaging or other diagnostic reports. Laboratory tests are under Results.",
        );
        return;
    }
    for r in list {
        h.raw("<div class=\"nhsuk-card cr-report\"><div class=\"nhsuk-card__content\"><h3 class=\"nhsuk-card__heading nhsuk-heading-s\">")
            .text(&words(r.v, "code").unwrap_or_else(|| "Report".to_owned()))
            .raw("</h3>");
        source_line(h, idx, r);
        match str_of(r.v, "status") {
            Some("preliminary" | "partial" | "registered") => {
                h.raw("<p><strong class=\"nhsuk-tag nhsuk-tag--yellow\">Not final: may change</strong></p>");
            }
            Some("amended" | "corrected" | "appended") => {
                h.raw("<p><strong class=\"nhsuk-tag nhsuk-tag--blue\">Amended</strong></p>");
            }
            _ => {}
        }
        let conclusion = str_of(r.v, "conclusion");
        let codes: Vec<String> = read::arr(r.v, "conclusionCode")
            .iter()
            .filter_map(read::concept)
            .collect();
        h.raw("<dl class=\"nhsuk-summary-list\">");
        row(
            h,
            "Conclusion",
            conclusion.unwrap_or(if codes.is_empty() { "Not recorded" } else { "" }),
        );
        if !codes.is_empty() {
            row(h, "Findings", &codes.join(", "));
        }
        if let Some(c) = read::concept_at(r.v, "category") {
            row(h, "Type", &c);
        }
        h.raw("</dl>");
        if conclusion.is_none() {
            paragraphs(h, &narrative::of(r.v));
        }
        h.raw("</div></div>");
    }
}

fn row(h: &mut Html, key: &str, value: &str) {
    h.raw("<div class=\"nhsuk-summary-list__row\"><dt class=\"nhsuk-summary-list__key\">")
        .text(key)
        .raw("</dt><dd class=\"nhsuk-summary-list__value\">")
        .text(value)
        .raw("</dd></div>");
}

fn table_head(h: &mut Html, caption: &str, cols: &[&'static str]) {
    h.raw("<table class=\"nhsuk-table\"><caption class=\"nhsuk-table__caption nhsuk-u-visually-hidden\">")
        .text(caption)
        .raw("</caption><thead class=\"nhsuk-table__head\"><tr class=\"nhsuk-table__row\">");
    for c in cols {
        h.raw("<th scope=\"col\" class=\"nhsuk-table__header\">")
            .raw(c)
            .raw("</th>");
    }
    h.raw("</tr></thead><tbody class=\"nhsuk-table__body\">");
}

fn cell(h: &mut Html, text: &str) {
    h.el("<td class=\"nhsuk-table__cell\">", text, "</td>");
}

pub(super) fn problems(h: &mut Html, idx: &Index<'_>) {
    let conditions: Vec<&Item<'_>> = idx
        .of("Condition")
        .iter()
        .filter(|c| !entered_in_error(c.v))
        .collect();
    let (active, past): (Vec<&Item<'_>>, Vec<&Item<'_>>) = conditions.into_iter().partition(|c| {
        matches!(
            read::status_code(c.v, "clinicalStatus").as_deref(),
            Some("active" | "recurrence" | "relapse") | None
        )
    });
    for (title, list, empty_text) in [
        ("Active problems", active, "No active problems recorded."),
        (
            "Past and resolved problems",
            past,
            "No past problems recorded.",
        ),
    ] {
        h.raw("<h2 class=\"nhsuk-heading-m\">")
            .text(title)
            .raw("</h2>");
        if list.is_empty() {
            empty(h, empty_text);
            continue;
        }
        table_head(h, title, &["Problem", "Status", "Onset", "Source"]);
        for c in list {
            h.raw("<tr class=\"nhsuk-table__row\">");
            let mut name = words(c.v, "code").unwrap_or_else(|| "Problem not named".to_owned());
            if read::has_any_code(c.v.get("verificationStatus"), "provisional")
                || read::has_any_code(c.v.get("verificationStatus"), "differential")
            {
                name.push_str(" (not confirmed)");
            }
            cell(h, &name);
            let mut status = read::status_code(c.v, "clinicalStatus")
                .map_or_else(|| "Not recorded".to_owned(), |s| capitalise(&s));
            if let Some(end) = read::date_at(c.v, "abatementDateTime")
                .or_else(|| read::period_end(c.v, "abatementPeriod"))
            {
                status = format!("{status} ({})", crate::dates::short(end));
            }
            cell(h, &status);
            cell(
                h,
                &date_or(
                    read::date_at(c.v, "onsetDateTime")
                        .or_else(|| read::date_at(c.v, "onsetPeriod")),
                    "Not recorded",
                ),
            );
            h.raw("<td class=\"nhsuk-table__cell\">");
            source_words(h, idx, c);
            h.raw("</td></tr>");
        }
        h.raw("</tbody></table>");
    }
    h.raw("<h2 class=\"nhsuk-heading-m\">Procedures</h2>");
    let procs: Vec<&Item<'_>> = idx
        .of("Procedure")
        .iter()
        .filter(|p| !entered_in_error(p.v))
        .collect();
    if procs.is_empty() {
        empty(h, "No procedures recorded.");
    } else {
        table_head(h, "Procedures", &["Procedure", "Date", "Status", "Source"]);
        for p in procs {
            h.raw("<tr class=\"nhsuk-table__row\">");
            cell(
                h,
                &words(p.v, "code").unwrap_or_else(|| "Procedure not named".to_owned()),
            );
            cell(h, &date_or(p.date, "Not recorded"));
            cell(
                h,
                &str_of(p.v, "status").map_or_else(|| "Not recorded".to_owned(), capitalise),
            );
            h.raw("<td class=\"nhsuk-table__cell\">");
            source_words(h, idx, p);
            h.raw("</td></tr>");
        }
        h.raw("</tbody></table>");
    }
    h.raw("<h2 class=\"nhsuk-heading-m\">Immunisations</h2>");
    let imms: Vec<&Item<'_>> = idx
        .of("Immunization")
        .iter()
        .filter(|i| !entered_in_error(i.v))
        .collect();
    if imms.is_empty() {
        empty(h, "No immunisations recorded.");
    } else {
        table_head(h, "Immunisations", &["Vaccine", "Date", "Status", "Source"]);
        for i in imms {
            h.raw("<tr class=\"nhsuk-table__row\">");
            cell(
                h,
                &words(i.v, "vaccineCode").unwrap_or_else(|| "Vaccine not named".to_owned()),
            );
            cell(h, &date_or(i.date, "Not recorded"));
            cell(
                h,
                match str_of(i.v, "status") {
                    Some("completed") => "Given",
                    Some("not-done") => "Not given",
                    _ => "Not recorded",
                },
            );
            h.raw("<td class=\"nhsuk-table__cell\">");
            source_words(h, idx, i);
            h.raw("</td></tr>");
        }
        h.raw("</tbody></table>");
    }
}

fn status_tag(h: &mut Html, status: Option<&str>) {
    let (class, text) = match status {
        Some("active") => ("nhsuk-tag nhsuk-tag--green", "Active"),
        Some("on-hold") => ("nhsuk-tag nhsuk-tag--yellow", "On hold"),
        Some("draft") => ("nhsuk-tag nhsuk-tag--yellow", "Draft"),
        Some("completed") => ("nhsuk-tag nhsuk-tag--grey", "Completed"),
        Some("revoked") => ("nhsuk-tag nhsuk-tag--grey", "Cancelled"),
        _ => ("nhsuk-tag nhsuk-tag--grey", "Status not recorded"),
    };
    h.raw("<strong class=\"")
        .raw(class)
        .raw("\">")
        .raw(text)
        .raw("</strong>");
}

fn period_text(v: &Value, key: &str) -> Option<String> {
    let p = v.get(key)?;
    let start = str_of(p, "start").and_then(crate::dates::parse);
    let end = str_of(p, "end").and_then(crate::dates::parse);
    match (start, end) {
        (Some(s), Some(e)) => Some(format!(
            "{} to {}",
            crate::dates::short(s),
            crate::dates::short(e)
        )),
        (Some(s), None) => Some(format!("From {}", crate::dates::short(s))),
        (None, Some(e)) => Some(format!("Until {}", crate::dates::short(e))),
        (None, None) => None,
    }
}

pub(super) fn care_plans(h: &mut Html, idx: &Index<'_>) {
    h.raw("<h2 class=\"nhsuk-heading-m\">Care plans</h2>");
    let mut list: Vec<&Item<'_>> = idx
        .of("CarePlan")
        .iter()
        .filter(|c| !entered_in_error(c.v))
        .collect();
    if list.is_empty() {
        empty(h, "No care plans recorded.");
        return;
    }
    // Active plans first (advance care plans before others), then the rest; newest first.
    list.sort_by_key(|c| {
        (
            !active_status(c.v, "status"),
            !super::summary::is_advance_care_plan(c.v),
        )
    });
    for c in list {
        h.raw("<div class=\"nhsuk-card cr-care-plan\"><div class=\"nhsuk-card__content\"><h3 class=\"nhsuk-card__heading nhsuk-heading-s\">")
            .text(
                &str_of(c.v, "title")
                    .map(str::to_owned)
                    .or_else(|| read::concept_at(c.v, "category"))
                    .unwrap_or_else(|| "Care plan".to_owned()),
            )
            .raw("</h3><p>");
        status_tag(h, str_of(c.v, "status"));
        if let Some(p) = period_text(c.v, "period") {
            h.raw(" ").text(&p);
        }
        h.raw("</p>");
        source_line(h, idx, c);
        let activities = read::arr(c.v, "activity");
        match str_of(c.v, "description") {
            Some(d) => paragraphs(h, &[d.to_owned()]),
            None if activities.is_empty() => paragraphs(h, &narrative::of(c.v)),
            None => {}
        }
        if !activities.is_empty() {
            h.raw("<h4 class=\"nhsuk-heading-xs\">Activities</h4><ul class=\"nhsuk-list nhsuk-list--bullet\">");
            for a in activities {
                let detail = a.get("detail");
                let text = detail
                    .and_then(|d| {
                        str_of(d, "description")
                            .map(str::to_owned)
                            .or_else(|| words(d, "code"))
                    })
                    .or_else(|| a.get("reference").and_then(read::reference))
                    .or_else(|| {
                        read::arr(a, "progress")
                            .iter()
                            .find_map(|n| str_of(n, "text"))
                            .map(str::to_owned)
                    })
                    .unwrap_or_else(|| "Activity not described".to_owned());
                h.raw("<li>").text(&text);
                if let Some(d) = detail {
                    if let Some(s) = str_of(d, "status") {
                        h.raw(" <span class=\"nhsuk-body-s\">(")
                            .text(&capitalise(s))
                            .raw(")</span>");
                    }
                    let who: Vec<String> = read::arr(d, "performer")
                        .iter()
                        .filter_map(read::reference)
                        .collect();
                    if !who.is_empty() {
                        h.raw(" — by ").text(&who.join(", "));
                    }
                }
                h.raw("</li>");
            }
            h.raw("</ul>");
        }
        let author = c.v.get("author").and_then(read::reference).or_else(|| {
            read::arr(c.v, "contributor")
                .first()
                .and_then(read::reference)
        });
        if let Some(a) = author {
            h.raw("<p class=\"nhsuk-body-s\">Written by ")
                .text(&a)
                .raw("</p>");
        }
        h.raw("</div></div>");
    }
}

/// What kind of encounter, in words: its type, else its class.
pub(super) fn encounter_kind(v: &Value) -> String {
    if let Some(t) = read::concept_at(v, "type") {
        return t;
    }
    let class = v.get("class");
    let code = class.and_then(|c| str_of(c, "code"));
    match code {
        Some("IMP" | "ACUTE" | "NONAC") => "Hospital admission".to_owned(),
        Some("EMER") => "Emergency department".to_owned(),
        Some("AMB") => "Appointment".to_owned(),
        Some("HH") => "Home visit".to_owned(),
        Some("VR") => "Phone or video consultation".to_owned(),
        _ => class
            .and_then(|c| str_of(c, "display"))
            .map_or_else(|| "Encounter".to_owned(), capitalise),
    }
}

pub(super) fn encounters(h: &mut Html, idx: &Index<'_>) {
    h.raw("<h2 class=\"nhsuk-heading-m\">Encounters</h2>");
    let list: Vec<&Item<'_>> = idx
        .of("Encounter")
        .iter()
        .filter(|e| !entered_in_error(e.v))
        .collect();
    if list.is_empty() {
        empty(h, "No hospital stays, appointments or visits recorded.");
        return;
    }
    h.raw("<ol class=\"nhsuk-list cr-timeline\">");
    for e in list {
        h.raw("<li class=\"cr-timeline__item\"><h3 class=\"nhsuk-heading-xs nhsuk-u-margin-bottom-1\">")
            .text(&period_text(e.v, "period").unwrap_or_else(|| "Date not recorded".to_owned()))
            .raw(": ")
            .text(&encounter_kind(e.v))
            .raw("</h3>");
        if matches!(
            str_of(e.v, "status"),
            Some("in-progress" | "arrived" | "onleave")
        ) {
            h.raw("<p><strong class=\"nhsuk-tag nhsuk-tag--blue\">Ongoing</strong></p>");
        }
        let reasons: Vec<String> = read::arr(e.v, "reasonCode")
            .iter()
            .filter_map(read::concept)
            .chain(read::arr(e.v, "reasonReference").iter().filter_map(|r| {
                idx.resolve(r)
                    .and_then(|c| words(c.v, "code"))
                    .or_else(|| str_of(r, "display").map(str::to_owned))
            }))
            .collect();
        if !reasons.is_empty()
            || e.v.get("hospitalization").is_some()
            || e.v.get("serviceType").is_some()
        {
            h.raw("<dl class=\"nhsuk-summary-list\">");
            if let Some(s) = words(e.v, "serviceType") {
                row(h, "Service", &s);
            }
            if !reasons.is_empty() {
                row(h, "Reason", &reasons.join(", "));
            }
            if let Some(hosp) = e.v.get("hospitalization") {
                if let Some(a) = words(hosp, "admitSource") {
                    row(h, "Admitted from", &a);
                }
                if let Some(d) = words(hosp, "dischargeDisposition") {
                    row(h, "Discharged to", &d);
                } else if let Some(d) = hosp.get("destination").and_then(read::reference) {
                    row(h, "Discharged to", &d);
                }
            }
            h.raw("</dl>");
        }
        source_line(h, idx, e);
        h.raw("</li>");
    }
    h.raw("</ol>");
}
