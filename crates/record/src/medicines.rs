//! One medicines list across sources. A GP's MedicationRequest and a hospital's
//! MedicationStatement for the same dm+d (or SNOMED CT) code are one medicine with two sources;
//! the newest statement about it decides whether it is current (a discharge that stopped a
//! repeat wins over the older repeat, a later GP re-start wins over the discharge).

use std::collections::HashMap;

use serde_json::Value;
use time::Duration;

use crate::index::{Index, Item};
use crate::read::{self, DMD, MEDICATION_CHANGE_EXTENSION, SNOMED, str_of};

/// What a discharge did to a medicine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Started,
    Stopped,
    Changed,
    Unchanged,
}

impl Change {
    pub(crate) fn words(self) -> &'static str {
        match self {
            Change::Started => "Started",
            Change::Stopped => "Stopped",
            Change::Changed => "Changed",
            Change::Unchanged => "Unchanged",
        }
    }

    pub(crate) fn tag_class(self) -> &'static str {
        match self {
            Change::Started => "nhsuk-tag nhsuk-tag--green",
            Change::Stopped => "nhsuk-tag nhsuk-tag--red",
            Change::Changed => "nhsuk-tag nhsuk-tag--orange",
            Change::Unchanged => "nhsuk-tag nhsuk-tag--grey",
        }
    }

    fn from_code(s: &str) -> Option<Change> {
        match s {
            "started" | "new" | "added" => Some(Change::Started),
            "stopped" | "discontinued" => Some(Change::Stopped),
            "changed" | "amended" => Some(Change::Changed),
            "unchanged" | "continued" => Some(Change::Unchanged),
            _ => None,
        }
    }
}

/// One source's statement about a medicine.
#[derive(Debug, Clone)]
pub(crate) struct MedEntry<'a> {
    pub(crate) item: Item<'a>,
    pub(crate) status: Option<String>,
    pub(crate) dose: Option<String>,
    /// A hospital's list from a stay before the latest discharge: the latest discharge
    /// summary's list replaces it.
    pub(crate) superseded: bool,
    /// "Repeat prescription", "Hospital discharge medicine", …
    pub(crate) kind: &'static str,
}

#[derive(Debug, Clone)]
pub(crate) struct Medicine<'a> {
    pub(crate) name: String,
    /// Newest first.
    pub(crate) entries: Vec<MedEntry<'a>>,
    pub(crate) current: bool,
    /// Set when the latest discharge summary lists it.
    pub(crate) discharge_change: Option<(Change, Option<String>)>,
}

impl Medicine<'_> {
    /// The newest dose instruction any source gives.
    pub(crate) fn dose(&self) -> Option<&str> {
        self.entries.iter().find_map(|e| e.dose.as_deref())
    }
}

pub(crate) struct Reconciled<'a> {
    pub(crate) medicines: Vec<Medicine<'a>>,
    /// The latest discharge summary's medication section, when there is one.
    pub(crate) discharge: Option<(Item<'a>, &'a Value)>,
}

/// The medication section of a discharge summary (PRSB heading, or a title that says so).
pub(crate) fn medication_section(composition: &Value) -> Option<&Value> {
    read::arr(composition, "section").iter().find(|s| {
        read::has_code(s.get("code"), SNOMED, "933361000000108")
            || str_of(s, "title").is_some_and(|t| t.to_ascii_lowercase().contains("medic"))
    })
}

fn medication_name(idx: &Index<'_>, v: &Value) -> (Option<String>, Option<String>) {
    let concept = v.get("medicationCodeableConcept").or_else(|| {
        v.get("medicationReference")
            .and_then(|r| idx.resolve(r))
            .and_then(|m| m.v.get("code"))
    });
    let name = concept
        .and_then(read::concept)
        .or_else(|| v.get("medicationReference").and_then(read::reference));
    let code = concept.and_then(|c| {
        read::codes(c)
            .find(|(s, _)| *s == DMD)
            .or_else(|| read::codes(c).find(|(s, _)| *s == SNOMED))
            .map(|(_, k)| k.to_owned())
    });
    (name, code)
}

pub(crate) fn change_of(v: &Value) -> Option<Change> {
    read::arr(v, "extension")
        .iter()
        .find(|e| str_of(e, "url") == Some(MEDICATION_CHANGE_EXTENSION))
        .and_then(|e| str_of(e, "valueCode"))
        .and_then(Change::from_code)
}

fn dose_of(v: &Value) -> Option<String> {
    read::arr(v, "dosageInstruction")
        .iter()
        .chain(read::arr(v, "dosage"))
        .find_map(|d| str_of(d, "text").map(str::to_owned))
}

fn kind_of(v: &Value) -> &'static str {
    let rt = read::resource_type(v);
    let course = read::status_code(v, "courseOfTherapyType");
    match (rt, course.as_deref()) {
        ("MedicationRequest", Some("continuous")) => "Repeat prescription",
        ("MedicationRequest", Some("acute")) => "Acute prescription",
        ("MedicationRequest", _) => "Prescription",
        _ if is_inpatient(v) => "Hospital medicine",
        _ => "Medicine record",
    }
}

fn is_inpatient(v: &Value) -> bool {
    read::has_any_code(v.get("category"), "inpatient")
        || read::has_any_code(v.get("category"), "discharge")
}

fn is_current_status(status: Option<&str>) -> bool {
    matches!(
        status,
        Some("active" | "intended" | "on-hold" | "draft") | None
    )
}

pub(crate) fn reconcile<'a>(idx: &Index<'a>) -> Reconciled<'a> {
    let latest_discharge = idx.latest_discharge().and_then(|c| c.date);
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let mut medicines: Vec<Medicine<'a>> = Vec::new();
    // Both lists are already newest first; merge keeps each medicine's entries in that order
    // after the final sort below.
    for rt in ["MedicationRequest", "MedicationStatement"] {
        for item in idx.of(rt) {
            let status = read::status_code(item.v, "status");
            if status.as_deref() == Some("entered-in-error") {
                continue;
            }
            let (name, code) = medication_name(idx, item.v);
            let name = name.unwrap_or_else(|| "Medicine not named".to_owned());
            let key = code.unwrap_or_else(|| format!("name:{}", name.to_lowercase()));
            let entry = MedEntry {
                item: *item,
                status,
                dose: dose_of(item.v),
                superseded: latest_discharge.is_some_and(|d| {
                    rt == "MedicationStatement"
                        && is_inpatient(item.v)
                        && item.date.is_some_and(|t| t < d - Duration::days(1))
                }),
                kind: kind_of(item.v),
            };
            match by_key.get(&key) {
                Some(i) => {
                    if let Some(m) = medicines.get_mut(*i) {
                        m.entries.push(entry);
                    }
                }
                None => {
                    by_key.insert(key, medicines.len());
                    medicines.push(Medicine {
                        name,
                        entries: vec![entry],
                        current: false,
                        discharge_change: None,
                    });
                }
            }
        }
    }
    for m in &mut medicines {
        m.entries.sort_by_key(|b| std::cmp::Reverse(b.item.date));
        m.current = m
            .entries
            .iter()
            .find(|e| !e.superseded)
            .is_some_and(|e| is_current_status(e.status.as_deref()));
    }

    // What the latest discharge summary says it changed.
    let mut discharge = None;
    if let Some(c) = idx.latest_discharge()
        && let Some(section) = medication_section(c.v)
    {
        discharge = Some((*c, section));
        for e in read::arr(section, "entry") {
            let Some(target) = idx.resolve(e) else {
                continue;
            };
            let (name, code) = medication_name(idx, target.v);
            let key = match (code, name) {
                (Some(k), _) => k,
                (None, Some(n)) => format!("name:{}", n.to_lowercase()),
                (None, None) => continue,
            };
            let Some(m) = by_key.get(&key).and_then(|i| medicines.get_mut(*i)) else {
                continue;
            };
            let stopped = read::status_code(target.v, "status").as_deref() == Some("stopped");
            let change = change_of(target.v).or(if stopped { Some(Change::Stopped) } else { None });
            if let Some(ch) = change {
                let note = read::notes(target.v)
                    .first()
                    .map(|s| (*s).to_owned())
                    .or_else(|| read::concept_at(target.v, "statusReason"));
                m.discharge_change = Some((ch, note));
            }
        }
    }
    // Current first, then by name, so the list reads like a MAR chart.
    medicines.sort_by(|a, b| {
        b.current
            .cmp(&a.current)
            .then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase()))
    });
    Reconciled {
        medicines,
        discharge,
    }
}
