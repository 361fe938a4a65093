//! A synthetic London for carerecord: the five Integrated Care Systems, GP practices, acute
//! trusts, a pathology lab and care homes (residential and nursing), and the people who live
//! there with the records care home staff look up — as FHIR R4 (UK Core-shaped) resources.
//!
//! Pure and deterministic: [`London::new`] builds the organisations and the plan of who lives
//! where from [`Options`]; [`London::person_bundle`] returns person `i`'s whole record as a
//! `transaction` Bundle of `PUT [type]/[id]` entries, a function of `(seed, i, plan)` only, so
//! people can be generated lazily, in any order, and in parallel, and the same seed gives
//! byte-identical output. Nothing here does I/O.
//!
//! Only synthetic data: NHS numbers are in the 999 test range (valid Modulus 11 check digit),
//! people, organisations and places are made up, and ODS codes start with `Z`.
//!
//! # Conventions (for readers of the data)
//!
//! - **Provenance.** Every resource has `meta.source` (a URI naming the source system,
//!   `https://systems.carerecord.example/<kind>/<ODS>`), a `meta.tag` in
//!   [`SOURCE_ORGANISATION_TAG`] whose code is the originating ODS code, and a `meta.tag` in
//!   [`SOURCE_SYSTEM_TAG`] naming the kind of system (`gp-clinical-system`, `hospital-epr`,
//!   `pathology-lims`, `care-home-digital-record`, `care-home-portal`, `ods-directory`). When
//!   it was recorded is in the resource's own date (`recordedDate`, `authoredOn`, `issued`,
//!   `date`, …) and in one `Provenance` per source organisation per bundle (`recorded`,
//!   `agent.who` the organisation, `target` every resource it contributed).
//! - **Organisations.** `Organization.type` carries a code from [`ORGANISATION_KIND_SYSTEM`]
//!   (`ics`, `gp-practice`, `acute-trust`, `pathology-lab`, `care-home-residential`,
//!   `care-home-nursing`); `address.district` is the borough; `partOf` the ICS. Care homes carry
//!   the extensions [`BED_COUNT_EXTENSION`] (`valueInteger`) and [`RECORD_SYSTEM_EXTENSION`]
//!   (`valueCoding` from [`RECORD_SYSTEM_CODES`]: `electronic` or `paper`). A paper-based home
//!   contributes only its residency (`EpisodeOfCare`, through the care-home portal); an
//!   electronic one also sends care plans and alerts.
//! - **Hospital numbers.** Local MRNs use the system `<MRN_SYSTEM_PREFIX><trust ODS code>`,
//!   type `MR`, assigner the trust.
//! - **Medicine changes on discharge.** Each discharge `MedicationStatement` carries the
//!   extension [`MEDICATION_CHANGE_EXTENSION`] (`valueCode` `started`, `stopped`, `changed` or
//!   `unchanged`); stopped ones have `status` `stopped` and a `statusReason`.
//! - **Sensitive items** carry `meta.security` `v3-ActCode|STD` and `v3-Confidentiality|R`.

mod date;
mod london;
mod person;
mod refdata;
mod rng;

pub use carerecord_fhir::nhs_number::check_digit as nhs_number_check_digit;
pub use london::London;

/// The NHS number identifier system.
pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
/// The ODS organisation code identifier system.
pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
/// The UK Core NHS number verification status extension.
pub const VERIFICATION_STATUS_EXTENSION: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus";
/// Its code system (`01` … `08`).
pub const VERIFICATION_STATUS_SYSTEM: &str =
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland";
/// `meta.tag` system whose code is the ODS code of the organisation a resource came from.
pub const SOURCE_ORGANISATION_TAG: &str =
    "https://fhir.carerecord.example/CodeSystem/source-organisation";
/// `meta.tag` system naming the kind of source system.
pub const SOURCE_SYSTEM_TAG: &str = "https://fhir.carerecord.example/CodeSystem/source-system";
/// The kinds of organisation generated (`Organization.type`).
pub const ORGANISATION_KIND_SYSTEM: &str =
    "https://fhir.carerecord.example/CodeSystem/organisation-kind";
/// Care home extension: registered beds (`valueInteger`).
pub const BED_COUNT_EXTENSION: &str =
    "https://fhir.carerecord.example/StructureDefinition/care-home-bed-count";
/// Care home extension: electronic record system or paper (`valueCoding`).
pub const RECORD_SYSTEM_EXTENSION: &str =
    "https://fhir.carerecord.example/StructureDefinition/care-home-record-system";
/// Codes of [`RECORD_SYSTEM_EXTENSION`]: `electronic`, `paper`.
pub const RECORD_SYSTEM_CODES: &str =
    "https://fhir.carerecord.example/CodeSystem/care-home-record-system";
/// Prefix of local hospital number (MRN) systems; the trust's ODS code follows.
pub const MRN_SYSTEM_PREFIX: &str = "https://fhir.carerecord.example/Id/mrn/";
/// Discharge medication change (`valueCode`: started, stopped, changed, unchanged).
pub const MEDICATION_CHANGE_EXTENSION: &str =
    "https://fhir.carerecord.example/StructureDefinition/medication-change";
/// Care home residency type (`EpisodeOfCare.type`): `residential`, `nursing`.
pub const RESIDENCY_TYPE_SYSTEM: &str =
    "https://fhir.carerecord.example/CodeSystem/care-home-residency";
pub const SNOMED: &str = "http://snomed.info/sct";
pub const LOINC: &str = "http://loinc.org";
pub const UCUM: &str = "http://unitsofmeasure.org";
pub const DMD: &str = "https://dmd.nhs.uk";

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub seed: u64,
    pub patients: u32,
    pub care_homes: u32,
    /// "Today" for the generated records: every date runs back from it. The output is a
    /// function of the options only, so the same options give byte-identical output; a caller
    /// that wants a timeline ending today (the demo) passes today's date here.
    pub as_of: AsOf,
}

impl Default for Options {
    /// The demo set: seed 1, 400 people, 12 care homes, as of [`AsOf::default`].
    fn default() -> Self {
        Options {
            seed: 1,
            patients: 400,
            care_homes: 12,
            as_of: AsOf::default(),
        }
    }
}

/// A calendar date (proleptic Gregorian), the day the synthetic timeline runs back from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AsOf {
    /// Days since 1970-01-01.
    day: i64,
}

impl AsOf {
    /// The date, when it is one (month 1–12, day within the month, years 1–9999).
    pub fn new(year: i32, month: u8, day: u8) -> Option<AsOf> {
        let (y, m, d) = (i64::from(year), i64::from(month), i64::from(day));
        if !(1..=9999).contains(&y) {
            return None;
        }
        let n = date::days_from_civil(y, m, d);
        (date::civil_from_days(n) == (y, m, d)).then_some(AsOf { day: n })
    }

    /// Year, month, day.
    pub fn ymd(self) -> (i32, u8, u8) {
        let (y, m, d) = date::civil_from_days(self.day);
        (
            i32::try_from(y).unwrap_or_default(),
            u8::try_from(m).unwrap_or_default(),
            u8::try_from(d).unwrap_or_default(),
        )
    }

    pub(crate) fn day_number(self) -> i64 {
        self.day
    }
}

impl Default for AsOf {
    /// 1 November 2026: the fixed default, so that generated files do not depend on the clock.
    fn default() -> Self {
        AsOf {
            day: date::days_from_civil(2026, 11, 1),
        }
    }
}

impl std::fmt::Display for AsOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&date::date(self.day))
    }
}

/// A date that is not `YYYY-MM-DD` or not in the calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDate(String);

impl std::fmt::Display for InvalidDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` is not a date in the form YYYY-MM-DD", self.0)
    }
}

impl std::error::Error for InvalidDate {}

impl std::str::FromStr for AsOf {
    type Err = InvalidDate;

    /// `YYYY-MM-DD`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidDate(s.to_owned());
        let mut parts = s.split('-');
        let (Some(y), Some(m), Some(d), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(bad());
        }
        let num = |t: &str| {
            t.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| t.parse::<i32>().ok())
                .flatten()
        };
        let (Some(y), Some(m), Some(d)) = (num(y), num(m), num(d)) else {
            return Err(bad());
        };
        AsOf::new(
            y,
            u8::try_from(m).map_err(|_| bad())?,
            u8::try_from(d).map_err(|_| bad())?,
        )
        .ok_or_else(bad)
    }
}

/// The test-range NHS number of person `i` (distinct for `i` below 500,000): `999`, six digits,
/// and the Modulus 11 check digit. Of the bodies `2k` and `2k+1` (which differ only in the last
/// digit, weighted 2) at most one has no check digit, so one of them always serves.
pub fn nhs_number(i: u32) -> String {
    let k = u64::from(i % 500_000) * 2;
    for body in [k, k + 1] {
        let mut d = [9u32, 9, 9, 0, 0, 0, 0, 0, 0];
        let mut rest = body;
        for slot in d[3..].iter_mut().rev() {
            *slot = (rest % 10) as u32;
            rest /= 10;
        }
        if let Some(c) = nhs_number_check_digit(&d) {
            let mut s: String = d.iter().map(|x| char::from(b'0' + *x as u8)).collect();
            s.push(char::from(b'0' + c as u8));
            return s;
        }
    }
    // Unreachable by the argument above; a fixed valid test number keeps this total.
    "9990000018".to_owned()
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
mod tests;
