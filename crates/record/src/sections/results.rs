//! Test results: grouped by test, newest first, flags in words and colour, a trend per test.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::Value;
use time::Duration;

use super::{date_or, empty, source_words, words};
use crate::html::Html;
use crate::index::{Index, Item};
use crate::read::{self, LOINC, SNOMED, str_of};
use crate::trend::{TrendPoint, TrendSeries, trend_svg};

/// Rows per test in the table: a page a nurse can read on a tablet, not a lab's archive.
const MAX_ROWS: usize = 20;
/// Points per trend chart.
const MAX_POINTS: usize = 100;
/// The most results of one test the page shows (in its chart or its table), newest first.
pub(crate) const SHOWN: usize = if MAX_POINTS > MAX_ROWS {
    MAX_POINTS
} else {
    MAX_ROWS
};

/// How abnormal a result is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Flag {
    pub(super) words: String,
    critical: bool,
}

impl Flag {
    fn class(&self) -> &'static str {
        if self.critical {
            "nhsuk-tag nhsuk-tag--red"
        } else {
            "nhsuk-tag nhsuk-tag--orange"
        }
    }
}

/// The abnormal flag of an Observation, from its interpretation (v3 ObservationInterpretation
/// codes), else by comparing a numeric value with its reference range. `None` when normal or
/// unknown.
pub(super) fn flag(v: &Value) -> Option<Flag> {
    let interp = v.get("interpretation");
    // Every interpretation code, gathered once (a page has thousands of results).
    let mut codes: Vec<&str> = Vec::new();
    match interp {
        Some(Value::Array(a)) => {
            for c in a {
                codes.extend(read::codes(c).map(|(_, k)| k));
            }
        }
        Some(c) => codes.extend(read::codes(c).map(|(_, k)| k)),
        None => {}
    }
    for (code, words, critical) in [
        ("HH", "Critically high", true),
        ("LL", "Critically low", true),
        ("AA", "Critically abnormal", true),
        ("HU", "Very high", true),
        ("LU", "Very low", true),
        ("H", "High", false),
        ("L", "Low", false),
        ("A", "Abnormal", false),
        ("POS", "Positive", false),
        ("R", "Resistant", false),
    ] {
        if codes.contains(&code) {
            return Some(Flag {
                words: words.to_owned(),
                critical,
            });
        }
    }
    let interpreted_normal = ["N", "NEG", "S", "IND"].iter().any(|c| codes.contains(c));
    if interpreted_normal {
        return None;
    }
    // An interpretation we do not know: show its words rather than nothing.
    if let Some(text) = interp.and_then(|i| match i {
        Value::Array(a) => a.iter().find_map(read::concept),
        c => read::concept(c),
    }) {
        return Some(Flag {
            words: text,
            critical: false,
        });
    }
    let value = v
        .get("valueQuantity")
        .and_then(|q| q.get("value"))
        .and_then(read::number)?;
    let range = read::arr(v, "referenceRange").first()?;
    let low = range
        .get("low")
        .and_then(|q| q.get("value"))
        .and_then(read::number);
    let high = range
        .get("high")
        .and_then(|q| q.get("value"))
        .and_then(read::number);
    if high.is_some_and(|h| value > h) {
        return Some(Flag {
            words: "High".to_owned(),
            critical: false,
        });
    }
    if low.is_some_and(|l| value < l) {
        return Some(Flag {
            words: "Low".to_owned(),
            critical: false,
        });
    }
    None
}

/// The result's value in words ("5.4 mmol/L", "Positive", "120/80 mmHg" as components).
pub(super) fn value_text(v: &Value) -> String {
    if let Some(q) = v.get("valueQuantity").and_then(read::quantity) {
        return q;
    }
    if let Some(c) = v.get("valueCodeableConcept").and_then(read::concept) {
        return c;
    }
    if let Some(s) = str_of(v, "valueString") {
        return s.to_owned();
    }
    if let Some(b) = v.get("valueBoolean").and_then(Value::as_bool) {
        return if b { "Yes" } else { "No" }.to_owned();
    }
    if let Some(n) = v.get("valueInteger").and_then(read::number_text) {
        return n;
    }
    if let Some(r) = v.get("valueRange") {
        let lo = r.get("low").and_then(read::quantity);
        let hi = r.get("high").and_then(read::quantity);
        return format!("{} to {}", lo.unwrap_or_default(), hi.unwrap_or_default());
    }
    let comps: Vec<String> = read::arr(v, "component")
        .iter()
        .map(|c| format!("{} {}", words(c, "code").unwrap_or_default(), value_text(c)))
        .collect();
    if !comps.is_empty() {
        return comps.join(", ");
    }
    if let Some(r) = words(v, "dataAbsentReason") {
        return format!("No result: {r}");
    }
    "No value recorded".to_owned()
}

fn range_text(v: &Value) -> String {
    let ranges = read::arr(v, "referenceRange");
    let Some(r) = ranges.first() else {
        return "Not given".to_owned();
    };
    let lo = r.get("low").and_then(read::quantity);
    let hi = r.get("high").and_then(read::quantity);
    let mut s = match (lo, hi) {
        (Some(l), Some(h)) => {
            // "3.5 to 5.3 mmol/L" reads better than repeating the unit.
            let l_num = r
                .get("low")
                .and_then(|q| q.get("value"))
                .and_then(read::number_text)
                .unwrap_or(l);
            format!("{l_num} to {h}")
        }
        (Some(l), None) => format!("Above {l}"),
        (None, Some(h)) => format!("Below {h}"),
        (None, None) => String::new(),
    };
    if let Some(t) = str_of(r, "text") {
        if s.is_empty() {
            s = t.to_owned();
        } else {
            s = format!("{s} ({t})");
        }
    }
    if s.is_empty() {
        "Not given".to_owned()
    } else {
        s
    }
}

/// The key results are grouped by: the test's LOINC code, else its SNOMED CT code, else any
/// code, else its name. Borrowed from the resource when it can be (a page has thousands).
pub(crate) fn test_key(v: &Value) -> (&str, Cow<'_, str>) {
    let Some(c) = v.get("code") else {
        return ("name", Cow::Borrowed(""));
    };
    read::codes(c)
        .find(|(s, _)| *s == LOINC)
        .or_else(|| read::codes(c).find(|(s, _)| *s == SNOMED))
        .or_else(|| read::codes(c).next())
        .map(|(s, k)| (s, Cow::Borrowed(k)))
        .unwrap_or_else(|| {
            (
                "name",
                Cow::Owned(read::concept(c).unwrap_or_default().to_lowercase()),
            )
        })
}

pub(crate) fn is_result(v: &Value) -> bool {
    !matches!(str_of(v, "status"), Some("cancelled" | "entered-in-error"))
}

fn flag_cell(h: &mut Html, f: Option<&Flag>) {
    match f {
        Some(f) => {
            h.raw("<strong class=\"")
                .raw(f.class())
                .raw("\">")
                .text(&f.words)
                .raw("</strong>");
        }
        None => {
            h.raw("Normal");
        }
    }
}

pub(super) fn render(h: &mut Html, idx: &Index<'_>) {
    let mut groups: Vec<(String, Vec<&Item<'_>>)> = Vec::new();
    let mut by_key: HashMap<(&str, Cow<'_, str>), usize> = HashMap::new();
    // Observations are newest first, so groups come out ordered by their newest result.
    for o in idx.of("Observation") {
        if !is_result(o.v) {
            continue;
        }
        let key = test_key(o.v);
        match by_key.get(&key) {
            Some(i) => {
                if let Some(g) = groups.get_mut(*i) {
                    g.1.push(o);
                }
            }
            None => {
                let id = format!("{}-{}", key.0, key.1);
                by_key.insert(key, groups.len());
                groups.push((id, vec![o]));
            }
        }
    }
    h.raw("<h2 class=\"nhsuk-heading-m\">Test results</h2>");
    if groups.is_empty() {
        empty(h, "No test results.");
        return;
    }
    h.raw("<p class=\"nhsuk-body\">Grouped by test, newest first. Results outside the reference range are marked in words.</p>");
    for (n, (key, list)) in groups.iter().enumerate() {
        let Some(first) = list.first() else { continue };
        let name = words(first.v, "code").unwrap_or_else(|| "Test not named".to_owned());
        // Each shown result's flag, worked out once for the chart and the table.
        let flags: Vec<Option<Flag>> = list
            .iter()
            .take(MAX_POINTS.max(MAX_ROWS))
            .map(|o| flag(o.v))
            .collect();
        let abnormal_latest = flags.first().is_some_and(Option::is_some);
        h.raw("<section class=\"cr-test\"><h3 class=\"nhsuk-heading-s\">")
            .text(&name)
            .raw("</h3>");
        // A trend for numeric results with two or more values.
        let points: Vec<TrendPoint> = list
            .iter()
            .zip(&flags)
            .take(MAX_POINTS)
            .filter_map(|(o, f)| {
                let value =
                    o.v.get("valueQuantity")
                        .and_then(|q| q.get("value"))
                        .and_then(read::number)?;
                Some(TrendPoint {
                    when: o.date?,
                    value,
                    flag: f.as_ref().map(|f| f.words.clone()),
                })
            })
            .collect();
        if points.len() >= 2 {
            let range = read::arr(first.v, "referenceRange").first();
            let bound = |k: &str| {
                range
                    .and_then(|r| r.get(k))
                    .and_then(|q| q.get("value"))
                    .and_then(read::number)
            };
            let unit = first
                .v
                .get("valueQuantity")
                .and_then(|q| str_of(q, "unit").or_else(|| str_of(q, "code")))
                .unwrap_or("")
                .to_owned();
            let series = TrendSeries {
                id: format!("trend-{n}-{key}"),
                title: name.clone(),
                unit,
                points,
                low: bound("low"),
                high: bound("high"),
            };
            h.raw("<figure class=\"cr-trend-figure\">")
                .html(&trend_svg(&series))
                .raw("</figure>");
        }
        h.raw("<table class=\"nhsuk-table cr-results\"><caption class=\"nhsuk-table__caption nhsuk-u-visually-hidden\">")
            .text(&name)
            .raw(if abnormal_latest {
                " results (latest is outside the reference range)"
            } else {
                " results"
            })
            .raw("</caption><thead class=\"nhsuk-table__head\"><tr class=\"nhsuk-table__row\"><th scope=\"col\" class=\"nhsuk-table__header\">Date</th><th scope=\"col\" class=\"nhsuk-table__header\">Result</th><th scope=\"col\" class=\"nhsuk-table__header\">Reference range</th><th scope=\"col\" class=\"nhsuk-table__header\">Flag</th><th scope=\"col\" class=\"nhsuk-table__header\">Source</th></tr></thead><tbody class=\"nhsuk-table__body\">");
        for (o, f) in list.iter().zip(flags).take(MAX_ROWS) {
            h.raw(if f.is_some() {
                "<tr class=\"nhsuk-table__row cr-result--abnormal\">"
            } else {
                "<tr class=\"nhsuk-table__row\">"
            });
            h.raw("<td class=\"nhsuk-table__cell\">")
                .text(&date_or(o.date, "Not recorded"))
                .raw("</td><td class=\"nhsuk-table__cell\">");
            if f.is_some() {
                h.el("<strong>", &value_text(o.v), "</strong>");
            } else {
                h.text(&value_text(o.v));
            }
            if str_of(o.v, "status") == Some("preliminary") {
                h.raw(" <strong class=\"nhsuk-tag nhsuk-tag--yellow\">Preliminary</strong>");
            }
            h.raw("</td><td class=\"nhsuk-table__cell\">")
                .text(&range_text(o.v))
                .raw("</td><td class=\"nhsuk-table__cell\">");
            flag_cell(h, f.as_ref());
            h.raw("</td><td class=\"nhsuk-table__cell\">");
            source_words(h, idx, o);
            h.raw("</td></tr>");
        }
        h.raw("</tbody></table>");
        // Older results the caller left unparsed still count.
        let total = list.len() + idx.unparsed_results(&test_key(first.v));
        if total > MAX_ROWS {
            h.raw("<p class=\"nhsuk-body-s\">Showing the ")
                .num(MAX_ROWS)
                .raw(" most recent of ")
                .num(total)
                .raw(" results")
                .raw(if total > MAX_POINTS {
                    "; the chart shows the most recent 100."
                } else {
                    "; the chart shows them all."
                })
                .raw(" Ask the GP practice or the laboratory for older results.</p>");
        }
        h.raw("</section>");
    }
}

/// For the summary: abnormal results of the last 90 days, newest first (at most 10).
pub(super) fn recent_abnormal(h: &mut Html, idx: &Index<'_>) {
    let since = idx.now - Duration::days(90);
    let list: Vec<(&Item<'_>, Flag)> = idx
        .of("Observation")
        .iter()
        .filter(|o| is_result(o.v) && o.date.is_some_and(|d| d >= since))
        .filter_map(|o| flag(o.v).map(|f| (o, f)))
        .take(10)
        .collect();
    h.raw("<h2 class=\"nhsuk-heading-m\">Recent abnormal results</h2>");
    if list.is_empty() {
        empty(h, "No abnormal results in the last 90 days.");
        return;
    }
    h.raw("<table class=\"nhsuk-table\"><caption class=\"nhsuk-table__caption nhsuk-u-visually-hidden\">Abnormal results in the last 90 days</caption><thead class=\"nhsuk-table__head\"><tr class=\"nhsuk-table__row\"><th scope=\"col\" class=\"nhsuk-table__header\">Test</th><th scope=\"col\" class=\"nhsuk-table__header\">Result</th><th scope=\"col\" class=\"nhsuk-table__header\">Flag</th><th scope=\"col\" class=\"nhsuk-table__header\">Source</th></tr></thead><tbody class=\"nhsuk-table__body\">");
    for (o, f) in list {
        h.raw(
            "<tr class=\"nhsuk-table__row cr-result--abnormal\"><td class=\"nhsuk-table__cell\">",
        )
        .text(&words(o.v, "code").unwrap_or_else(|| "Test not named".to_owned()))
        .raw("</td><td class=\"nhsuk-table__cell\"><strong>")
        .text(&value_text(o.v))
        .raw("</strong></td><td class=\"nhsuk-table__cell\">");
        flag_cell(h, Some(&f));
        h.raw("</td><td class=\"nhsuk-table__cell\">");
        source_words(h, idx, o);
        h.raw("</td></tr>");
    }
    h.raw("</tbody></table>");
}
