//! The sections' HTML fragments and the person header. Fragments use `h2` for their parts
//! (the page's `h1` is the person) and the NHS.UK design system's classes.

mod clinical;
mod discharge;
mod medicines;
pub(crate) mod results;
mod summary;

use carerecord_fhir::NhsNumber;
use serde_json::Value;

use crate::html::Html;
use crate::index::{Index, Item};
use crate::read::{self, str_of};
use crate::sources::Source;
use crate::{PersonHeader, Section, dates};

pub(crate) fn render(idx: &Index<'_>, section: Section) -> String {
    let mut h = Html::new();
    if !section.available_to(idx.view) {
        h.raw("<div class=\"nhsuk-inset-text\"><span class=\"nhsuk-u-visually-hidden\">Information: </span><p>")
            .text(section.unavailable_reason())
            .raw("</p></div>");
        return h.finish();
    }
    withheld_notice(&mut h, idx);
    match section {
        Section::Summary => summary::render(&mut h, idx),
        Section::Discharge => discharge::render(&mut h, idx),
        Section::Results => results::render(&mut h, idx),
        Section::Reports => clinical::reports(&mut h, idx),
        Section::Medicines => medicines::render(&mut h, idx),
        Section::Problems => clinical::problems(&mut h, idx),
        Section::CarePlans => clinical::care_plans(&mut h, idx),
        Section::Encounters => clinical::encounters(&mut h, idx),
    }
    h.finish()
}

fn withheld_notice(h: &mut Html, idx: &Index<'_>) {
    if idx.withheld == 0 {
        return;
    }
    h.raw("<div class=\"nhsuk-inset-text cr-withheld\"><span class=\"nhsuk-u-visually-hidden\">Information: </span><p>")
        .num(idx.withheld)
        .raw(if idx.withheld == 1 {
            " item withheld by their source."
        } else {
            " items withheld by their source."
        })
        .raw(" Ask the organisation that holds them if you need them for this person's care.</p></div>");
}

/// "From {organisation}, {date}" — every item shows where it came from and when — with a
/// warning when nothing new has arrived from that source for longer than its usual lag.
fn source_line(h: &mut Html, idx: &Index<'_>, item: &Item<'_>) {
    h.raw("<p class=\"nhsuk-body-s nhsuk-u-secondary-text-color cr-source\">");
    source_words(h, idx, item);
    h.raw("</p>");
}

/// The words of [`source_line`], for a table cell.
fn source_words(h: &mut Html, idx: &Index<'_>, item: &Item<'_>) {
    let source = idx.source(item);
    h.raw("From ")
        .text(source.map_or("source not recorded", |s| s.name.as_str()))
        .raw(", ")
        .text(&date_or(item.date, "date not recorded"));
    if let Some(s) = source {
        stale_tag(h, s, idx.now);
    }
}

/// The "may be out of date" tag of a source silent for longer than its usual lag.
fn stale_tag(h: &mut Html, s: &Source, now: time::OffsetDateTime) {
    if let Some(since) = s.stale_since(now) {
        h.raw(" <strong class=\"nhsuk-tag nhsuk-tag--grey cr-stale\">May be out of date: ")
            .raw(if s.feed {
                "its feed has sent nothing since "
            } else {
                "nothing new from this source since "
            })
            .text(&dates::short(since))
            .raw("</strong>");
    }
}

fn date_or(t: Option<time::OffsetDateTime>, missing: &str) -> String {
    t.map_or_else(|| missing.to_owned(), dates::short)
}

fn empty(h: &mut Html, what: &str) {
    h.el("<p class=\"nhsuk-body cr-empty\">", what, "</p>");
}

fn paragraphs(h: &mut Html, ps: &[String]) {
    for p in ps {
        h.el("<p class=\"nhsuk-body\">", p, "</p>");
    }
}

/// Plain text of `v[key]`, or of a CodeableConcept there.
fn words(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => read::concept_at(v, key),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f
            .to_uppercase()
            .chain(c)
            .collect::<String>()
            .replace('-', " "),
        None => String::new(),
    }
}

/// Whether a status-like field says the thing is in force.
fn active_status(v: &Value, key: &str) -> bool {
    match read::status_code(v, key).as_deref() {
        Some(s) => matches!(s, "active" | "recurrence" | "relapse" | "in-progress"),
        None => true,
    }
}

fn entered_in_error(v: &Value) -> bool {
    read::status_code(v, "status").as_deref() == Some("entered-in-error")
        || read::status_code(v, "verificationStatus").as_deref() == Some("entered-in-error")
}

pub(crate) fn header(idx: &Index<'_>) -> PersonHeader {
    let p = idx.patient;
    let names = read::arr(p, "name");
    let name = names
        .iter()
        .find(|n| matches!(str_of(n, "use"), Some("usual")))
        .or_else(|| names.iter().find(|n| str_of(n, "use") == Some("official")))
        .or_else(|| names.first())
        .and_then(|n| {
            str_of(n, "text").map(str::to_owned).or_else(|| {
                let parts: Vec<&str> = read::arr(n, "prefix")
                    .iter()
                    .chain(read::arr(n, "given"))
                    .filter_map(Value::as_str)
                    .chain(str_of(n, "family"))
                    .collect();
                (!parts.is_empty()).then(|| parts.join(" "))
            })
        })
        .unwrap_or_else(|| "Name not recorded".to_owned());
    let birth = str_of(p, "birthDate")
        .and_then(dates::parse)
        .map(|t| t.date());
    let nhs = read::arr(p, "identifier")
        .iter()
        .find(|i| str_of(i, "system") == Some(read::NHS_NUMBER))
        .and_then(|i| str_of(i, "value"))
        .map(|v| NhsNumber::parse(v).map_or_else(|_| v.to_owned(), |n| n.formatted()));
    let gp = read::arr(p, "generalPractitioner").first().and_then(|r| {
        idx.resolve(r)
            .and_then(|o| str_of(o.v, "name").map(str::to_owned))
            .or_else(|| {
                r.get("identifier")
                    .and_then(|i| str_of(i, "value"))
                    .and_then(|ods| idx.organisations.get(ods).cloned())
            })
            .or_else(|| read::reference(r))
    });
    let addresses = read::arr(p, "address");
    let address = addresses
        .iter()
        .find(|a| {
            str_of(a, "use") != Some("old") && a.get("period").and_then(|x| x.get("end")).is_none()
        })
        .or_else(|| addresses.first());
    let lines: Vec<&str> = address
        .map(|a| {
            read::arr(a, "line")
                .iter()
                .filter_map(Value::as_str)
                .collect()
        })
        .unwrap_or_default();
    let room = lines
        .iter()
        .find(|l| l.to_ascii_lowercase().starts_with("room "))
        .map(|l| (*l).to_owned());
    let address = address.and_then(|a| {
        str_of(a, "text").map(str::to_owned).or_else(|| {
            let parts: Vec<&str> = lines
                .iter()
                .copied()
                .chain(str_of(a, "city"))
                .chain(str_of(a, "postalCode"))
                .collect();
            (!parts.is_empty()).then(|| parts.join(", "))
        })
    });
    let alerts = idx
        .of("Flag")
        .iter()
        .filter(|f| active_status(f.v, "status") && !entered_in_error(f.v))
        .count();
    PersonHeader {
        name,
        born: birth.map(dates::long),
        age: birth.map(|b| dates::age(b, idx.now.date())),
        nhs_number_formatted: nhs,
        gender: str_of(p, "gender").map(capitalise),
        gp,
        address,
        room,
        alerts,
    }
}
