//! The reconciled medicines list.

use super::{empty, paragraphs, source_line};
use crate::html::Html;
use crate::index::Index;
use crate::medicines::{Change, Medicine, reconcile};
use crate::narrative;

pub(super) fn render(h: &mut Html, idx: &Index<'_>) {
    let r = reconcile(idx);
    // What the last discharge changed, first: it is what a care home has to act on.
    if let Some((c, section)) = r.discharge {
        h.raw("<div class=\"nhsuk-card cr-discharge-changes\"><div class=\"nhsuk-card__content\"><h2 class=\"nhsuk-card__heading nhsuk-heading-m\">Changes at the last discharge</h2>");
        source_line(h, idx, &c);
        let changed: Vec<&Medicine<'_>> = r
            .medicines
            .iter()
            .filter(|m| matches!(m.discharge_change, Some((ch, _)) if ch != Change::Unchanged))
            .collect();
        if changed.is_empty() {
            let text = narrative::of(section);
            if text.is_empty() {
                empty(h, "No changes recorded.");
            } else {
                paragraphs(h, &text);
            }
        } else {
            h.raw("<ul class=\"nhsuk-list\">");
            for m in changed {
                if let Some((ch, note)) = &m.discharge_change {
                    h.raw("<li><strong class=\"")
                        .raw(ch.tag_class())
                        .raw("\">")
                        .raw(ch.words())
                        .raw("</strong> <strong>")
                        .text(&m.name)
                        .raw("</strong>");
                    if let Some(n) = note {
                        h.raw(": ").text(n);
                    }
                    h.raw("</li>");
                }
            }
            h.raw("</ul>");
        }
        h.raw("</div></div>");
    }
    table(h, idx, &r.medicines, true, "Current medicines");
    table(h, idx, &r.medicines, false, "Stopped and past medicines");
}

/// The current medicines (used by the summary too).
pub(super) fn current_table(h: &mut Html, idx: &Index<'_>, title: &str) {
    let r = reconcile(idx);
    table(h, idx, &r.medicines, true, title);
}

fn table(h: &mut Html, idx: &Index<'_>, meds: &[Medicine<'_>], current: bool, title: &str) {
    h.raw("<h2 class=\"nhsuk-heading-m\">")
        .text(title)
        .raw("</h2>");
    let list: Vec<&Medicine<'_>> = meds.iter().filter(|m| m.current == current).collect();
    if list.is_empty() {
        empty(
            h,
            if current {
                "No current medicines recorded."
            } else {
                "None."
            },
        );
        return;
    }
    h.raw("<table class=\"nhsuk-table cr-medicines\"><caption class=\"nhsuk-table__caption nhsuk-u-visually-hidden\">")
        .text(title)
        .raw("</caption><thead class=\"nhsuk-table__head\"><tr class=\"nhsuk-table__row\"><th scope=\"col\" class=\"nhsuk-table__header\">Medicine</th><th scope=\"col\" class=\"nhsuk-table__header\">Dose</th><th scope=\"col\" class=\"nhsuk-table__header\">Sources</th></tr></thead><tbody class=\"nhsuk-table__body\">");
    for m in list {
        h.raw("<tr class=\"nhsuk-table__row\"><td class=\"nhsuk-table__cell\"><strong>")
            .text(&m.name)
            .raw("</strong>");
        if let Some((ch, _)) = m.discharge_change
            && ch != Change::Unchanged
        {
            h.raw(" <strong class=\"")
                .raw(ch.tag_class())
                .raw("\">")
                .raw(ch.words())
                .raw(" at discharge</strong>");
            if ch == Change::Stopped && current {
                // A newer source still lists it: exactly what a nurse should query.
                h.raw(" <span class=\"nhsuk-body-s cr-check\">Still on a newer list: check with the GP practice.</span>");
            }
        }
        h.raw("</td><td class=\"nhsuk-table__cell\">")
            .text(m.dose().unwrap_or("Not recorded"))
            .raw("</td><td class=\"nhsuk-table__cell\"><ul class=\"nhsuk-list nhsuk-u-margin-bottom-0\">");
        for e in &m.entries {
            let source = idx.source(&e.item);
            h.raw("<li>")
                .text(source.map_or("Source not recorded", |s| s.name.as_str()))
                .raw(": ")
                .text(e.kind);
            if let Some(s) = &e.status {
                h.raw(", ").text(&s.replace('-', " "));
            }
            if e.superseded {
                h.raw(" (from an earlier hospital stay)");
            }
            h.raw(", ")
                .text(&super::date_or(e.item.date, "date not recorded"));
            if let Some(s) = source {
                super::stale_tag(h, s, idx.now);
            }
            h.raw("</li>");
        }
        h.raw("</ul></td></tr>");
    }
    h.raw("</tbody></table>");
}
