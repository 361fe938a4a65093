//! The one record: a person's FHIR R4 resources as care home staff read them.
//!
//! [`RecordView::build`] indexes everything it is given once (by type, by `Type/id`, by source
//! organisation) and renders each [`Section`] as an HTML fragment that uses the NHS.UK design
//! system's own classes (`nhsuk-summary-list`, `nhsuk-table`, `nhsuk-tag`, `nhsuk-card`,
//! `nhsuk-warning-callout`, `nhsuk-inset-text`). The portal puts the fragments into its pages.
//!
//! Pure: no I/O, no clock (the caller passes `now`), no panics on odd input. Any valid FHIR R4
//! resource may lack any optional field, so every reader here falls back to "not recorded"
//! instead of failing: staff get what is there.
//!
//! Markup is written through [`html::Html`], whose only way to add text escapes it, rather
//! than through a template engine: every fragment is built from loops over FHIR JSON where a
//! template would only restate the loop, and one escaping writer is easier to audit.
//! Narrative XHTML (`text.div`) is never passed through; it is reduced to escaped paragraphs.
//!
//! Every item shows its source organisation and its date. Feeds arrive in batches, so an
//! item from a source we have heard nothing new from for longer than its feed's usual lag is
//! marked as possibly out of date (see [`sources`]).

mod badges;
mod dates;
mod html;
mod index;
mod medicines;
mod narrative;
mod read;
mod sections;
mod sources;
mod trend;

use std::collections::HashMap;

use carerecord_access::View;
use serde_json::Value;
use time::OffsetDateTime;

pub use badges::{BadgeSearch, badge_searches, badges, badges_since, care_plan_changed};
pub use trend::{TrendPoint, TrendSeries, trend_svg};

/// The most results of one test the results section shows (its chart and its table), newest
/// first by [the date it is of](read::item_date): a caller may leave older ones unparsed.
pub const RESULTS_SHOWN_PER_TEST: usize = sections::results::SHOWN;

/// A part of the record, shown as a tab of the resident's page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    Summary,
    Discharge,
    Results,
    Reports,
    Medicines,
    Problems,
    CarePlans,
    Encounters,
}

const ALL_SECTIONS: [Section; 8] = [
    Section::Summary,
    Section::Discharge,
    Section::Results,
    Section::Reports,
    Section::Medicines,
    Section::Problems,
    Section::CarePlans,
    Section::Encounters,
];

impl Section {
    /// The path segment of the section's page (`/residents/{id}/{slug}`).
    pub fn slug(&self) -> &'static str {
        match self {
            Section::Summary => "summary",
            Section::Discharge => "discharge",
            Section::Results => "results",
            Section::Reports => "reports",
            Section::Medicines => "medicines",
            Section::Problems => "problems",
            Section::CarePlans => "care-plans",
            Section::Encounters => "encounters",
        }
    }

    /// The tab's title.
    pub fn title(&self) -> &'static str {
        match self {
            Section::Summary => "Summary",
            Section::Discharge => "Discharge summaries and letters",
            Section::Results => "Results",
            Section::Reports => "Reports",
            Section::Medicines => "Medicines",
            Section::Problems => "Problems and history",
            Section::CarePlans => "Care plans",
            Section::Encounters => "Encounters",
        }
    }

    pub fn from_slug(s: &str) -> Option<Section> {
        ALL_SECTIONS.iter().copied().find(|x| x.slug() == s)
    }

    /// Every section, in tab order.
    pub fn all() -> &'static [Section] {
        &ALL_SECTIONS
    }

    /// Whether a role with `view` may open the section. The restricted view (care workers,
    /// senior carers) has the summary, medicines, care plans and the latest discharge
    /// summary's plan and medication sections — the same line the access policy draws.
    pub fn available_to(&self, view: View) -> bool {
        match view {
            View::Full => true,
            View::None => false,
            View::Restricted => matches!(
                self,
                Section::Summary | Section::Discharge | Section::Medicines | Section::CarePlans
            ),
        }
    }

    /// Why the section is not shown to a restricted-view role, in words a care worker
    /// understands (the portal shows it in place of the section).
    pub fn unavailable_reason(&self) -> &'static str {
        match self {
            Section::Summary | Section::Medicines | Section::CarePlans => {
                "Your role does not include access to clinical records."
            }
            Section::Discharge => {
                "Your role shows only the plan and medicines from the latest discharge summary. Ask a registered nurse for the full summary."
            }
            Section::Results => {
                "Test results are shown to registered nurses and clinicians only. Ask a registered nurse or the GP practice if you need a result."
            }
            Section::Reports => {
                "Diagnostic reports, such as X-rays and scans, are shown to registered nurses and clinicians only."
            }
            Section::Problems => {
                "The full list of problems and past history is shown to registered nurses and clinicians only. Current problems are on the summary."
            }
            Section::Encounters => {
                "Hospital stays and appointments are shown to registered nurses and clinicians only."
            }
        }
    }
}

/// What a record page is built from. `resources` is everything the principal may see of the
/// person (any types, any order); `withheld` is how many matches the sources withheld.
pub struct RecordInput<'a> {
    pub patient: &'a Value,
    pub resources: &'a [Value],
    /// ODS code → organisation name, to name sources known only by code.
    pub organisations: &'a HashMap<String, String>,
    /// ODS code → when that organisation's HL7 v2 feed last delivered a message (about
    /// anyone): how fresh its items are is judged by its feed, not by this person's items.
    /// Empty when no source has a feed.
    pub feeds: &'a HashMap<String, OffsetDateTime>,
    pub now: OffsetDateTime,
    pub view: View,
    pub withheld: u64,
    /// Resources of the person that the page does not show, given only for their source and
    /// when it last sent something (`meta` is enough): a page that does not parse every
    /// resource still says truly how fresh each source is. Not indexed, never rendered.
    pub sources_only: &'a [Unparsed],
}

/// Resources a page did not parse, alike in all it needs to know of them: one stands for
/// `count`. `value` holds `resourceType` and `meta` (its `tag`, and as `lastUpdated` the latest
/// arrival among them); for results also `code` and `status`, so the results section still
/// counts them. A long record's thousands of results come from a few sources and tests, so a
/// few of these stand for all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Unparsed {
    pub value: Value,
    pub count: usize,
}

/// The heading of a person's record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PersonHeader {
    /// The name to address them by (prefix, given names, family), or "Name not recorded".
    pub name: String,
    /// Date of birth, e.g. "3 March 1938".
    pub born: Option<String>,
    /// Age in whole years at `now`.
    pub age: Option<i64>,
    /// The NHS number in 3-3-4 form, e.g. "999 000 0018".
    pub nhs_number_formatted: Option<String>,
    /// "Female", "Male", "Other", "Unknown".
    pub gender: Option<String>,
    /// The registered GP practice's name.
    pub gp: Option<String>,
    /// Where they live (one line).
    pub address: Option<String>,
    /// Room in the care home, when the record names one.
    pub room: Option<String>,
    /// How many active alerts (Flags) they have.
    pub alerts: usize,
}

/// A person's record, indexed and rendered once.
#[derive(Debug, Clone)]
pub struct RecordView {
    header: PersonHeader,
    sections: HashMap<Section, String>,
}

impl RecordView {
    /// Indexes the input once and renders every section.
    pub fn build(input: RecordInput<'_>) -> RecordView {
        RecordView::build_for(input, &ALL_SECTIONS)
    }

    /// Like [`RecordView::build`], rendering only `sections` (a page that shows one section
    /// need not pay for the others; results are most of the cost of a long record). Any other
    /// section renders as an empty string.
    pub fn build_for(input: RecordInput<'_>, sections: &[Section]) -> RecordView {
        let idx = index::Index::new(&input);
        let header = sections::header(&idx);
        let sections = sections
            .iter()
            .map(|s| (*s, sections::render(&idx, *s)))
            .collect();
        RecordView { header, sections }
    }

    pub fn header(&self) -> &PersonHeader {
        &self.header
    }

    /// The section's escaped HTML fragment (no page shell). A section the view may not open
    /// renders only its [`Section::unavailable_reason`], never clinical content.
    pub fn render(&self, section: Section) -> String {
        self.sections.get(&section).cloned().unwrap_or_default()
    }
}

/// An event worth a glance on the residents list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Badge {
    pub kind: BadgeKind,
    pub text: String,
    pub when: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BadgeKind {
    InHospital,
    Discharged,
    NewResults,
    CarePlanUpdated,
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
mod tests;
