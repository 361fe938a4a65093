//! Stand-in for `carerecord-record` until its branch is merged: the same names, rendering
//! only an explanation. Deleted when the real crate arrives.
#![allow(dead_code)]

use std::collections::HashMap;

use carerecord_access::View;
use serde_json::Value;
use time::OffsetDateTime;

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

const ALL: [Section; 8] = [
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
        ALL.iter().copied().find(|x| x.slug() == s)
    }
    pub fn all() -> &'static [Section] {
        &ALL
    }
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
    pub fn unavailable_reason(&self) -> &'static str {
        "Your role does not include this part of the record."
    }
}

pub struct RecordInput<'a> {
    pub patient: &'a Value,
    pub resources: &'a [Value],
    pub organisations: &'a HashMap<String, String>,
    pub now: OffsetDateTime,
    pub view: View,
    pub withheld: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PersonHeader {
    pub name: String,
    pub born: Option<String>,
    pub age: Option<i64>,
    pub nhs_number_formatted: Option<String>,
    pub gender: Option<String>,
    pub gp: Option<String>,
    pub address: Option<String>,
    pub room: Option<String>,
    pub alerts: usize,
}

pub struct RecordView {
    header: PersonHeader,
    count: usize,
    withheld: u64,
}

impl RecordView {
    pub fn build(input: RecordInput<'_>) -> RecordView {
        RecordView {
            header: PersonHeader {
                name: input.patient["id"].as_str().unwrap_or_default().to_owned(),
                ..PersonHeader::default()
            },
            count: input.resources.len(),
            withheld: input.withheld,
        }
    }
    pub fn header(&self) -> &PersonHeader {
        &self.header
    }
    pub fn render(&self, _section: Section) -> String {
        format!(
            "<p>{} items in this record.</p><p>{} items withheld by their source</p>",
            self.count, self.withheld
        )
    }
}

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

pub fn badges(_resources: &[Value], _now: OffsetDateTime) -> Vec<Badge> {
    Vec::new()
}
