//! Discharge summaries (by their PRSB headings) and letters.

use carerecord_access::policy::RESTRICTED_SECTIONS;
use serde_json::Value;

use super::{date_or, empty, paragraphs, source_line, source_words, words};
use crate::html::Html;
use crate::index::{Index, Item};
use crate::medicines::{Change, medication_section};
use crate::narrative;
use crate::read::{self, SNOMED, str_of};

/// PRSB eDischarge headings (SNOMED CT) in the order the standard presents them.
const PRSB_ORDER: [&str; 17] = [
    "886711000000101",  // GP practice
    "886731000000109",  // Patient demographics
    "886781000000108",  // Admission details
    "886811000000106",  // Discharge details
    "886891000000102",  // Presenting complaints or issues
    "887161000000102",  // Diagnoses
    "887171000000109",  // Procedures
    "887181000000106",  // Clinical summary
    "1082101000000102", // Investigation results
    "933361000000108",  // Medications and medical devices
    "886921000000105",  // Allergies and adverse reactions
    "886931000000107",  // Safety alerts
    "886961000000102",  // Legal information
    "887051000000101",  // Social context
    "887201000000105",  // Plan and requested actions
    "1052951000000105", // Information and advice given
    "887231000000104",  // Person completing record
];

const PLAN: &str = "887201000000105";

fn heading_rank(section: &Value) -> usize {
    PRSB_ORDER
        .iter()
        .position(|c| read::has_code(section.get("code"), SNOMED, c))
        .unwrap_or(PRSB_ORDER.len())
}

fn is_plan(section: &Value) -> bool {
    read::has_code(section.get("code"), SNOMED, PLAN)
        || str_of(section, "title").is_some_and(|t| t.to_ascii_lowercase().contains("plan"))
}

fn is_restricted_section(section: &Value) -> bool {
    RESTRICTED_SECTIONS
        .iter()
        .any(|c| read::has_code(section.get("code"), SNOMED, c))
}

pub(super) fn render(h: &mut Html, idx: &Index<'_>) {
    if idx.restricted() {
        // The restricted view: the latest discharge summary's plan and medicines only.
        h.raw("<h2 class=\"nhsuk-heading-m\">Latest discharge summary</h2>");
        match idx.latest_discharge() {
            Some(c) => {
                source_line(h, idx, c);
                restricted_sections(h, idx, c, "h3");
                h.raw("<div class=\"nhsuk-inset-text\"><span class=\"nhsuk-u-visually-hidden\">Information: </span><p>Your role shows the plan and medicines from the latest discharge summary only.</p></div>");
            }
            None => empty(h, "No discharge summary."),
        }
        return;
    }
    h.raw("<h2 class=\"nhsuk-heading-m\">Discharge summaries</h2>");
    let compositions = idx.of("Composition");
    if compositions.is_empty() {
        empty(h, "No discharge summaries.");
    }
    for c in compositions {
        if super::entered_in_error(c.v) {
            continue;
        }
        composition(h, idx, c);
    }
    letters(h, idx);
}

fn composition(h: &mut Html, idx: &Index<'_>, c: &Item<'_>) {
    h.raw("<div class=\"nhsuk-card cr-composition\"><div class=\"nhsuk-card__content\"><h3 class=\"nhsuk-card__heading nhsuk-heading-m\">")
        .text(
            &str_of(c.v, "title")
                .map(str::to_owned)
                .or_else(|| words(c.v, "type"))
                .unwrap_or_else(|| "Document".to_owned()),
        )
        .raw(" — ")
        .text(&date_or(c.date, "date not recorded"))
        .raw("</h3>");
    source_line(h, idx, c);
    if str_of(c.v, "status") == Some("preliminary") {
        h.raw(
            "<p><strong class=\"nhsuk-tag nhsuk-tag--yellow\">Preliminary: may change</strong></p>",
        );
    }
    let mut sections: Vec<&Value> = read::arr(c.v, "section").iter().collect();
    // Stable: unknown headings keep their order after the known ones.
    sections.sort_by_key(|s| heading_rank(s));
    if sections.is_empty() {
        paragraphs(h, &narrative::of(c.v));
    }
    for s in sections {
        section(h, idx, s, 4);
    }
    h.raw("</div></div>");
}

fn open_heading(h: &mut Html, level: usize) {
    h.raw(match level {
        3 => "<h3 class=\"nhsuk-heading-s\">",
        4 => "<h4 class=\"nhsuk-heading-s\">",
        5 => "<h5 class=\"nhsuk-heading-xs\">",
        _ => "<h6 class=\"nhsuk-heading-xs\">",
    });
}

fn close_heading(h: &mut Html, level: usize) {
    h.raw(match level {
        3 => "</h3>",
        4 => "</h4>",
        5 => "</h5>",
        _ => "</h6>",
    });
}

/// One section: its title, its narrative (or, without one, its entries), its subsections.
fn section(h: &mut Html, idx: &Index<'_>, s: &Value, level: usize) {
    let title = str_of(s, "title")
        .map(str::to_owned)
        .or_else(|| words(s, "code"))
        .unwrap_or_else(|| "Section".to_owned());
    h.raw("<section class=\"cr-section\">");
    open_heading(h, level);
    h.text(&title);
    close_heading(h, level);
    let text = narrative::of(s);
    if !text.is_empty() {
        paragraphs(h, &text);
    } else {
        entries(h, idx, s);
    }
    for sub in read::arr(s, "section") {
        section(h, idx, sub, (level + 1).min(6));
    }
    h.raw("</section>");
}

/// A section's entries as a list of what they point at.
fn entries(h: &mut Html, idx: &Index<'_>, s: &Value) {
    let list = read::arr(s, "entry");
    if list.is_empty() {
        if let Some(reason) = words(s, "emptyReason") {
            h.el("<p class=\"nhsuk-body\">", &reason, "</p>");
        } else {
            empty(h, "Nothing recorded.");
        }
        return;
    }
    h.raw("<ul class=\"nhsuk-list nhsuk-list--bullet\">");
    for e in list {
        h.raw("<li>");
        match idx.resolve(e) {
            Some(item) => {
                h.text(&describe(idx, item.v)).raw(" ");
                h.raw("<span class=\"nhsuk-body-s\">(");
                source_words(h, idx, &item);
                h.raw(")</span>");
            }
            None => {
                h.text(&read::reference(e).unwrap_or_else(|| "Entry not available".to_owned()));
            }
        }
        h.raw("</li>");
    }
    h.raw("</ul>");
}

/// A one-line description of any resource.
pub(super) fn describe(idx: &Index<'_>, v: &Value) -> String {
    for key in [
        "code",
        "medicationCodeableConcept",
        "vaccineCode",
        "type",
        "category",
    ] {
        if let Some(w) = words(v, key) {
            if read::resource_type(v) == "Observation"
                && let Some(q) = v.get("valueQuantity").and_then(read::quantity)
            {
                return format!("{w}: {q}");
            }
            return w;
        }
    }
    if let Some(m) = v.get("medicationReference")
        && let Some(name) = idx
            .resolve(m)
            .and_then(|x| words(x.v, "code"))
            .or_else(|| read::reference(m))
    {
        return name;
    }
    str_of(v, "title")
        .or_else(|| str_of(v, "name"))
        .map(str::to_owned)
        .unwrap_or_else(|| read::resource_type(v).to_owned())
}

/// The parts of a discharge summary every view may see: the plan and requested actions, and
/// the medicines with what changed.
pub(super) fn restricted_sections(
    h: &mut Html,
    idx: &Index<'_>,
    c: &Item<'_>,
    level: &'static str,
) {
    let sections = read::arr(c.v, "section");
    let plan = sections
        .iter()
        .find(|s| is_restricted_section(s) && is_plan(s))
        .or_else(|| sections.iter().find(|s| is_plan(s)));
    let lvl = if level == "h3" { 3 } else { 4 };
    open_heading(h, lvl);
    h.raw("Plan and requested actions");
    close_heading(h, lvl);
    match plan {
        Some(s) => {
            let text = narrative::of(s);
            if text.is_empty() {
                entries(h, idx, s);
            } else {
                h.raw("<ul class=\"nhsuk-list nhsuk-list--bullet cr-plan\">");
                for p in &text {
                    h.el("<li>", p, "</li>");
                }
                h.raw("</ul>");
            }
        }
        None => empty(h, "No plan recorded in this summary."),
    }
    open_heading(h, lvl);
    h.raw("Medicine changes");
    close_heading(h, lvl);
    let Some(s) = medication_section(c.v) else {
        empty(h, "No medicines section in this summary.");
        return;
    };
    // Coded entries give each medicine's change; the narrative is the fallback.
    let mut rows = Vec::new();
    for e in read::arr(s, "entry") {
        let Some(t) = idx.resolve(e) else { continue };
        let change = crate::medicines::change_of(t.v).or((read::status_code(t.v, "status")
            .as_deref()
            == Some("stopped"))
        .then_some(Change::Stopped));
        rows.push((t, change));
    }
    if rows.is_empty() {
        let text = narrative::of(s);
        if text.is_empty() {
            empty(h, "No medicines listed.");
        } else {
            paragraphs(h, &text);
        }
        return;
    }
    // Changes first: they are what the care home must act on.
    rows.sort_by_key(|(_, ch)| match ch {
        Some(Change::Started) => 0,
        Some(Change::Stopped) => 1,
        Some(Change::Changed) => 2,
        None => 3,
        Some(Change::Unchanged) => 4,
    });
    h.raw("<table class=\"nhsuk-table cr-med-changes\"><caption class=\"nhsuk-table__caption nhsuk-u-visually-hidden\">Medicine changes at discharge</caption><thead class=\"nhsuk-table__head\"><tr class=\"nhsuk-table__row\"><th scope=\"col\" class=\"nhsuk-table__header\">Medicine</th><th scope=\"col\" class=\"nhsuk-table__header\">Change</th><th scope=\"col\" class=\"nhsuk-table__header\">Dose and notes</th></tr></thead><tbody class=\"nhsuk-table__body\">");
    for (t, change) in rows {
        h.raw("<tr class=\"nhsuk-table__row\"><td class=\"nhsuk-table__cell\">")
            .text(&describe(idx, t.v))
            .raw("</td><td class=\"nhsuk-table__cell\">");
        match change {
            Some(ch) => {
                h.raw("<strong class=\"")
                    .raw(ch.tag_class())
                    .raw("\">")
                    .raw(ch.words())
                    .raw("</strong>");
            }
            None => {
                h.raw("Not stated");
            }
        }
        h.raw("</td><td class=\"nhsuk-table__cell\">");
        let dose = read::arr(t.v, "dosage")
            .iter()
            .chain(read::arr(t.v, "dosageInstruction"))
            .find_map(|d| str_of(d, "text"));
        if let Some(d) = dose {
            h.text(d);
        }
        for n in read::notes(t.v) {
            h.raw("<br>").text(n);
        }
        h.raw("</td></tr>");
    }
    h.raw("</tbody></table>");
}

fn letters(h: &mut Html, idx: &Index<'_>) {
    let docs: Vec<&Item<'_>> = idx
        .of("DocumentReference")
        .iter()
        .filter(|d| !matches!(str_of(d.v, "status"), Some("entered-in-error")))
        .collect();
    h.raw("<h2 class=\"nhsuk-heading-m\">Letters and documents</h2>");
    if docs.is_empty() {
        empty(h, "No letters.");
        return;
    }
    h.raw("<table class=\"nhsuk-table\"><caption class=\"nhsuk-table__caption nhsuk-u-visually-hidden\">Letters and documents</caption><thead class=\"nhsuk-table__head\"><tr class=\"nhsuk-table__row\"><th scope=\"col\" class=\"nhsuk-table__header\">Document</th><th scope=\"col\" class=\"nhsuk-table__header\">Source</th><th scope=\"col\" class=\"nhsuk-table__header\">View</th></tr></thead><tbody class=\"nhsuk-table__body\">");
    for d in docs {
        let title = str_of(d.v, "description")
            .map(str::to_owned)
            .or_else(|| words(d.v, "type"))
            .or_else(|| {
                read::arr(d.v, "content")
                    .iter()
                    .find_map(|c| c.get("attachment").and_then(|a| str_of(a, "title")))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "Document".to_owned());
        let content_type = read::arr(d.v, "content")
            .iter()
            .find_map(|c| c.get("attachment").and_then(|a| str_of(a, "contentType")));
        h.raw("<tr class=\"nhsuk-table__row\"><td class=\"nhsuk-table__cell\">")
            .text(&title)
            .raw("</td><td class=\"nhsuk-table__cell\">");
        source_words(h, idx, d);
        h.raw("</td><td class=\"nhsuk-table__cell\">");
        let id = read::id(d.v);
        if !id.is_empty() && !read::arr(d.v, "content").is_empty() {
            let href = format!("/residents/{}/documents/{id}", idx.patient_id());
            h.raw("<a class=\"nhsuk-link\"")
                .attr("href", &href)
                .raw(">View ")
                .raw(match content_type {
                    Some(t) if t.contains("pdf") => "letter (PDF)",
                    _ => "document",
                })
                .raw("<span class=\"nhsuk-u-visually-hidden\">: ")
                .text(&title)
                .raw("</span></a>");
        } else {
            h.raw("Not available");
        }
        h.raw("</td></tr>");
    }
    h.raw("</tbody></table>");
}
