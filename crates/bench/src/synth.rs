//! Synthetic care-home residents as FHIR R4 transaction Bundles.
//!
//! [`record`] is a pure function of `(seed, index)`: the same pair always gives the same Bundle,
//! and any resident can be generated on its own (so concurrent loaders need no shared state).
//! Every Bundle holds one Patient and 30–40 clinical resources that reference it and each other
//! by `urn:uuid:` fullUrls, as a hospital or GP system would send them.
//!
//! Only synthetic data: NHS numbers are in the 999 test range (with a valid Modulus 11 check
//! digit), names and addresses are drawn from lists of common words. Clinical codes are real
//! SNOMED CT / LOINC / dm+d concepts chosen to look plausible, not clinically coherent records.

use serde_json::{Map, Value, json};
use time::{Date, Duration, macros::date};

/// The NHS number identifier system.
pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
/// The identifier system of ODS organisation codes.
pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
/// The tag system naming the source system a resource came from.
pub const SOURCE_TAG_SYSTEM: &str = "https://carerecord.example/CodeSystem/source-system";
pub const SNOMED: &str = "http://snomed.info/sct";
pub const LOINC: &str = "http://loinc.org";
pub const UCUM: &str = "http://unitsofmeasure.org";
pub const DMD: &str = "https://dmd.nhs.uk";

/// "Today" for generated records: dates run back from here, so output does not depend on the
/// clock.
pub const ANCHOR: Date = date!(2026 - 11 - 01);

/// A small deterministic PRNG (SplitMix64): fast, seedable, good enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; `0` when `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % ((hi - lo + 1).max(1) as u64)) as i64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Roughly normal (sum of uniforms), mean `mean`, standard deviation `sd`.
    pub fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let s: f64 = (0..6).map(|_| self.unit()).sum::<f64>() - 3.0;
        mean + sd * s * std::f64::consts::SQRT_2
    }

    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    /// A version 4 UUID, lower case.
    pub fn uuid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }
}

/// The Modulus 11 check digit of nine digits; `None` when no check digit makes them valid.
pub fn check_digit(first_nine: &[u32; 9]) -> Option<u32> {
    let sum: u32 = first_nine
        .iter()
        .zip((2..=10).rev())
        .map(|(d, w)| d * w)
        .sum();
    match 11 - (sum % 11) {
        11 => Some(0),
        10 => None,
        c => Some(c),
    }
}

/// The `index`-th test-range NHS number (`999` + six digits + check digit), distinct for every
/// index below 500,000. Of the bodies `2k` and `2k+1` (same but the last digit, weighted 2) at
/// most one can have no check digit, so one of them always serves.
pub fn nhs_number(index: u64) -> String {
    let k = (index % 500_000) * 2;
    for body in [k, k + 1] {
        let mut d = [9, 9, 9, 0, 0, 0, 0, 0, 0];
        let mut rest = body;
        for slot in d[3..].iter_mut().rev() {
            *slot = (rest % 10) as u32;
            rest /= 10;
        }
        if let Some(c) = check_digit(&d) {
            let mut s: String = d.iter().map(|x| char::from(b'0' + *x as u8)).collect();
            s.push(char::from(b'0' + c as u8));
            return s;
        }
    }
    // Unreachable by the argument above; a fixed valid test number keeps this total.
    "9990000018".to_owned()
}

/// One generated resident.
#[derive(Debug, Clone)]
pub struct Record {
    pub index: u64,
    pub nhs_number: String,
    /// The transaction Bundle: the Patient first, then its clinical resources.
    pub bundle: Value,
}

impl Record {
    /// The resources in the Bundle, in entry order.
    pub fn resources(&self) -> impl Iterator<Item = &Value> {
        entries(&self.bundle).filter_map(|e| e.get("resource"))
    }

    pub fn resource_count(&self) -> usize {
        entries(&self.bundle).count()
    }
}

fn entries(bundle: &Value) -> impl Iterator<Item = &Value> {
    bundle
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// LOINC codes of results every resident has (renal function and full blood count), for
/// patient-scoped searches that always find something.
pub const COMMON_LOINC: &[&str] = &[
    "2951-2", "2823-3", "22664-7", "14682-9", "62238-1", "718-7", "6690-2", "777-3",
];

// ---- reference data -----------------------------------------------------------------------

const FEMALE_GIVEN: &[&str] = &[
    "Margaret", "Joan", "Dorothy", "Patricia", "Jean", "Sheila", "Barbara", "Maureen", "Doreen",
    "Irene", "Eileen", "Audrey", "Brenda", "Sylvia", "Pauline", "Valerie", "June", "Iris", "Elsie",
    "Winifred", "Gladys", "Olive", "Edna", "Marjorie", "Kathleen", "Pamela", "Rita", "Shirley",
    "Hazel", "Beryl", "Phyllis", "Vera", "Ivy", "Mavis", "Ada", "Nora",
];
const MALE_GIVEN: &[&str] = &[
    "John",
    "William",
    "George",
    "Peter",
    "Michael",
    "David",
    "Brian",
    "Kenneth",
    "Ronald",
    "Derek",
    "Dennis",
    "Roy",
    "Arthur",
    "Frank",
    "Albert",
    "Harold",
    "Leslie",
    "Stanley",
    "Alan",
    "Colin",
    "Raymond",
    "Norman",
    "Terence",
    "Bernard",
    "Ernest",
    "Walter",
    "Cyril",
    "Eric",
    "Frederick",
    "Reginald",
    "Sidney",
    "Gordon",
    "Maurice",
    "Trevor",
    "Alfred",
    "Len",
];
const FAMILY: &[&str] = &[
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Patel",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Thomas",
    "Clarke",
    "Jackson",
    "Wood",
    "Harris",
    "Edwards",
    "Turner",
    "Martin",
    "Cooper",
    "Hill",
    "Ward",
    "Hughes",
    "Moore",
    "Clark",
    "King",
    "Harrison",
    "Lewis",
    "Baker",
    "Lee",
    "Allen",
    "Morris",
    "Khan",
    "Scott",
    "Watson",
    "Davis",
    "Parker",
    "James",
    "Bennett",
    "Young",
    "Phillips",
    "Richardson",
    "Mitchell",
    "Bailey",
    "Carter",
    "Cook",
    "Singh",
    "Shah",
    "O'Brien",
    "Murphy",
    "Okafor",
    "Mensah",
    "Campbell",
    "Kelly",
    "Price",
    "Fletcher",
    "Begum",
];
const STREETS: &[&str] = &[
    "Elm Row",
    "Church Lane",
    "Victoria Road",
    "Station Road",
    "Park Avenue",
    "Highgate Hill",
    "Albion Road",
    "Mildmay Grove",
    "Lordship Lane",
    "Brixton Hill",
    "Coldharbour Lane",
    "Archway Road",
    "Fortis Green",
    "Green Lanes",
    "Lea Bridge Road",
    "Uxbridge Road",
];
const CARE_HOMES: &[&str] = &[
    "Rosewood House",
    "The Limes",
    "Highfield Court",
    "Oakleigh Lodge",
    "Cedar Grange",
    "Willow Bank",
    "St Anne's Residential Home",
    "Abbeyfield House",
    "Hollybrook Care Home",
];
/// (postcode district, post town).
const DISTRICTS: &[&str] = &[
    "N1", "N4", "N7", "N16", "N19", "NW1", "NW5", "NW6", "E2", "E5", "E8", "E17", "SE5", "SE15",
    "SE22", "SE23", "SW2", "SW9", "SW16", "SW17", "W3", "W12", "W10",
];
const POSTCODE_LETTERS: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";
/// (ODS code, name) of London acute trusts.
const HOSPITALS: &[(&str, &str)] = &[
    ("RAL", "Royal Free London NHS Foundation Trust"),
    (
        "RRV",
        "University College London Hospitals NHS Foundation Trust",
    ),
    ("R1H", "Barts Health NHS Trust"),
    ("RJ1", "Guy's and St Thomas' NHS Foundation Trust"),
    ("RJZ", "King's College Hospital NHS Foundation Trust"),
    ("RYJ", "Imperial College Healthcare NHS Trust"),
    ("RKE", "Whittington Health NHS Trust"),
];
/// (ODS code, name) of GP practices (made up).
const PRACTICES: &[(&str, &str)] = &[
    ("F83001", "Canonbury Medical Centre"),
    ("F83002", "Archway Surgery"),
    ("G85003", "Camberwell Green Practice"),
    ("E87004", "Shepherd's Bush Health Centre"),
    ("F84005", "Hackney Downs Surgery"),
];

/// A long-term condition: SNOMED CT code and display.
struct Problem {
    code: &'static str,
    display: &'static str,
    /// Indexes into [`MEDS`] of what it is usually treated with.
    meds: &'static [usize],
    /// The chance a resident has it.
    prevalence: f64,
}

/// (dm+d VMP code, name, dose instructions).
const MEDS: &[(&str, &str, &str)] = &[
    (
        "322236009",
        "Paracetamol 500mg tablets",
        "Two tablets up to four times a day when required for pain",
    ),
    (
        "320000009",
        "Atorvastatin 20mg tablets",
        "One tablet at night",
    ),
    (
        "317335000",
        "Omeprazole 20mg gastro-resistant capsules",
        "One capsule each morning",
    ),
    ("326857007", "Donepezil 5mg tablets", "One tablet at night"),
    (
        "317972000",
        "Furosemide 40mg tablets",
        "One tablet each morning",
    ),
    (
        "318590006",
        "Bisoprolol 2.5mg tablets",
        "One tablet each morning",
    ),
    (
        "320176004",
        "Salbutamol 100micrograms/dose inhaler CFC free",
        "Two puffs when required for breathlessness",
    ),
    (
        "325278007",
        "Metformin 500mg tablets",
        "One tablet twice a day with meals",
    ),
    (
        "703907005",
        "Apixaban 2.5mg tablets",
        "One tablet twice a day",
    ),
    (
        "319283006",
        "Amlodipine 5mg tablets",
        "One tablet each morning",
    ),
    (
        "318900002",
        "Ramipril 2.5mg capsules",
        "One capsule each morning",
    ),
    ("374646004", "Senna 7.5mg tablets", "Two tablets at night"),
];

const PROBLEMS: &[Problem] = &[
    Problem {
        code: "52448006",
        display: "Dementia",
        meds: &[3],
        prevalence: 0.7,
    },
    Problem {
        code: "84114007",
        display: "Heart failure",
        meds: &[4, 5],
        prevalence: 0.3,
    },
    Problem {
        code: "13645005",
        display: "Chronic obstructive lung disease",
        meds: &[6],
        prevalence: 0.25,
    },
    Problem {
        code: "44054006",
        display: "Diabetes mellitus type 2",
        meds: &[7],
        prevalence: 0.3,
    },
    Problem {
        code: "709044004",
        display: "Chronic kidney disease",
        meds: &[10],
        prevalence: 0.3,
    },
    Problem {
        code: "49436004",
        display: "Atrial fibrillation",
        meds: &[8],
        prevalence: 0.25,
    },
    Problem {
        code: "38341003",
        display: "Hypertensive disorder, systemic arterial",
        meds: &[9],
        prevalence: 0.5,
    },
    Problem {
        code: "396275006",
        display: "Osteoarthritis",
        meds: &[0],
        prevalence: 0.4,
    },
    Problem {
        code: "49049000",
        display: "Parkinson's disease",
        meds: &[],
        prevalence: 0.08,
    },
    Problem {
        code: "230690007",
        display: "Cerebrovascular accident",
        meds: &[1],
        prevalence: 0.15,
    },
];

/// A lab analyte: LOINC code, display, UCUM unit, reference range (low, high), decimals, and
/// the mean and spread of generated values.
struct Analyte {
    loinc: &'static str,
    display: &'static str,
    unit: &'static str,
    low: Option<f64>,
    high: Option<f64>,
    decimals: usize,
    mean: f64,
    sd: f64,
}

#[allow(clippy::too_many_arguments)]
const fn a(
    loinc: &'static str,
    display: &'static str,
    unit: &'static str,
    low: Option<f64>,
    high: Option<f64>,
    decimals: usize,
    mean: f64,
    sd: f64,
) -> Analyte {
    Analyte {
        loinc,
        display,
        unit,
        low,
        high,
        decimals,
        mean,
        sd,
    }
}

const RENAL: &[Analyte] = &[
    a(
        "2951-2",
        "Sodium [Moles/volume] in Serum or Plasma",
        "mmol/L",
        Some(133.0),
        Some(146.0),
        0,
        138.0,
        4.0,
    ),
    a(
        "2823-3",
        "Potassium [Moles/volume] in Serum or Plasma",
        "mmol/L",
        Some(3.5),
        Some(5.3),
        1,
        4.4,
        0.5,
    ),
    a(
        "22664-7",
        "Urea [Moles/volume] in Serum or Plasma",
        "mmol/L",
        Some(2.5),
        Some(7.8),
        1,
        7.5,
        2.5,
    ),
    a(
        "14682-9",
        "Creatinine [Moles/volume] in Serum or Plasma",
        "umol/L",
        Some(45.0),
        Some(104.0),
        0,
        105.0,
        30.0,
    ),
    a(
        "62238-1",
        "Glomerular filtration rate/1.73 sq M.predicted (CKD-EPI)",
        "mL/min/{1.73_m2}",
        Some(60.0),
        None,
        0,
        55.0,
        15.0,
    ),
];
const FBC: &[Analyte] = &[
    a(
        "718-7",
        "Hemoglobin [Mass/volume] in Blood",
        "g/L",
        Some(115.0),
        Some(165.0),
        0,
        118.0,
        14.0,
    ),
    a(
        "6690-2",
        "Leukocytes [#/volume] in Blood by Automated count",
        "10*9/L",
        Some(4.0),
        Some(11.0),
        1,
        7.5,
        2.2,
    ),
    a(
        "777-3",
        "Platelets [#/volume] in Blood by Automated count",
        "10*9/L",
        Some(150.0),
        Some(400.0),
        0,
        250.0,
        70.0,
    ),
];
const LIVER: &[Analyte] = &[
    a(
        "1742-6",
        "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
        Some(0.0),
        Some(40.0),
        0,
        22.0,
        10.0,
    ),
    a(
        "1751-7",
        "Albumin [Mass/volume] in Serum or Plasma",
        "g/L",
        Some(35.0),
        Some(50.0),
        0,
        36.0,
        4.0,
    ),
];
const CRP: Analyte = a(
    "1988-5",
    "C reactive protein [Mass/volume] in Serum or Plasma",
    "mg/L",
    Some(0.0),
    Some(5.0),
    0,
    8.0,
    9.0,
);
const HBA1C: Analyte = a(
    "59261-8",
    "Hemoglobin A1c/Hemoglobin.total in Blood by IFCC protocol",
    "mmol/mol",
    Some(20.0),
    Some(41.0),
    0,
    56.0,
    9.0,
);
const NTPROBNP: Analyte = a(
    "33762-6",
    "Natriuretic peptide.B prohormone N-Terminal [Mass/volume] in Serum or Plasma",
    "ng/L",
    Some(0.0),
    Some(400.0),
    0,
    1800.0,
    900.0,
);

/// (LOINC panel code, display, analytes).
const PANELS: &[(&str, &str, &[Analyte])] = &[
    (
        "24362-6",
        "Renal function 2000 panel - Serum or Plasma",
        RENAL,
    ),
    ("58410-2", "CBC panel - Blood by Automated count", FBC),
    (
        "24325-3",
        "Hepatic function 2000 panel - Serum or Plasma",
        LIVER,
    ),
];

const ALLERGIES: &[(&str, &str, &str, &str)] = &[
    // (SNOMED allergy code, display, category, reaction display)
    (
        "91936005",
        "Allergy to penicillin",
        "medication",
        "Urticaria",
    ),
    (
        "294505008",
        "Allergy to amoxicillin",
        "medication",
        "Skin rash",
    ),
    ("300913006", "Shellfish allergy", "food", "Angioedema"),
    (
        "294461002",
        "Allergy to trimethoprim",
        "medication",
        "Skin rash",
    ),
    ("91934008", "Allergy to nut", "food", "Anaphylaxis"),
    ("293586001", "Allergy to aspirin", "medication", "Wheezing"),
];
const REACTIONS: &[(&str, &str)] = &[
    ("Urticaria", "126485001"),
    ("Skin rash", "271807003"),
    ("Angioedema", "41291007"),
    ("Anaphylaxis", "39579001"),
    ("Wheezing", "56018004"),
];

const ADMISSION_REASONS: &[(&str, &str)] = &[
    ("233604007", "Pneumonia"),
    ("68566005", "Urinary tract infectious disease"),
    ("217082002", "Accidental fall"),
    ("34436003", "Blood in urine"),
    ("271737000", "Anemia"),
    ("2776000", "Delirium"),
    ("422587007", "Nausea"),
    ("195967001", "Asthma"),
    ("267036007", "Dyspnea"),
];

// ---- generation -----------------------------------------------------------------------------

/// Where a resource came from: `meta.source` and a `meta.tag` coding of the system.
#[derive(Clone, Copy)]
enum Source {
    HospitalEpr,
    Pathology,
    GpSystem,
    CareHome,
}

struct Gen<'a> {
    rng: Rng,
    hospital: (&'a str, &'a str),
    practice: (&'a str, &'a str),
    care_home: &'a str,
    entries: Vec<Value>,
    patient_url: String,
}

/// A date `days` before [`ANCHOR`].
fn days_ago(days: i64) -> Date {
    ANCHOR - Duration::days(days)
}

fn date_str(d: Date) -> String {
    let (y, m, day) = (d.year(), u8::from(d.month()), d.day());
    format!("{y:04}-{m:02}-{day:02}")
}

fn number(v: f64, decimals: usize) -> Value {
    let text = format!("{v:.decimals$}");
    match text.parse::<serde_json::Number>() {
        Ok(n) => Value::Number(n),
        Err(_) => json!(v),
    }
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"system": system, "code": code, "display": display})
}

fn concept(system: &str, code: &str, display: &str) -> Value {
    json!({"coding": [coding(system, code, display)], "text": display})
}

fn reference(url: &str) -> Value {
    json!({"reference": url})
}

impl Gen<'_> {
    fn date_time(&mut self, d: Date) -> String {
        let h = self.rng.range(7, 19);
        let m = self.rng.range(0, 59);
        format!("{}T{h:02}:{m:02}:00+00:00", date_str(d))
    }

    fn meta(&self, source: Source) -> Value {
        let (ods, hospital) = self.hospital;
        let (gp_ods, gp) = self.practice;
        let (src, code, display) = match source {
            Source::HospitalEpr => (
                format!("urn:ods:{ods}#epr"),
                "hospital-epr",
                format!("{hospital} electronic patient record"),
            ),
            Source::Pathology => (
                format!("urn:ods:{ods}#lims"),
                "pathology-lims",
                format!("{hospital} pathology laboratory system"),
            ),
            Source::GpSystem => (
                format!("urn:ods:{gp_ods}#gp"),
                "gp-system",
                format!("{gp} GP clinical system"),
            ),
            Source::CareHome => (
                "urn:carerecord:care-home-system".to_owned(),
                "care-home-system",
                format!("{} digital social care record", self.care_home),
            ),
        };
        json!({"source": src, "tag": [coding(SOURCE_TAG_SYSTEM, code, &display)]})
    }

    /// Adds `resource` as a POST entry; returns its fullUrl.
    fn push(&mut self, source: Source, mut resource: Value) -> String {
        let url = format!("urn:uuid:{}", self.rng.uuid());
        let rt = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("Basic")
            .to_owned();
        if let Some(o) = resource.as_object_mut() {
            // `meta` right after `resourceType`, as servers usually write it.
            let mut ordered = Map::new();
            for (k, v) in std::mem::take(o) {
                ordered.insert(k.clone(), v);
                if k == "resourceType" {
                    ordered.insert("meta".into(), self.meta(source));
                }
            }
            *o = ordered;
        }
        self.entries.push(json!({
            "fullUrl": url,
            "resource": resource,
            "request": {"method": "POST", "url": rt}
        }));
        url
    }

    fn hospital_ref(&self) -> Value {
        json!({"identifier": {"system": ODS_SYSTEM, "value": self.hospital.0}, "display": self.hospital.1})
    }

    fn practice_ref(&self) -> Value {
        json!({"identifier": {"system": ODS_SYSTEM, "value": self.practice.0}, "display": self.practice.1})
    }

    fn patient(&mut self, nhs: &str) -> (String, String) {
        let female = self.rng.chance(0.68);
        let given = self
            .rng
            .pick(if female { FEMALE_GIVEN } else { MALE_GIVEN });
        let middle = self
            .rng
            .pick(if female { FEMALE_GIVEN } else { MALE_GIVEN });
        let family = self.rng.pick(FAMILY);
        let prefix = if female {
            self.rng.pick(&["Mrs", "Miss", "Ms"])
        } else {
            "Mr"
        };
        let birth = Date::from_ordinal_date(self.rng.range(1925, 1950) as i32, 1)
            .unwrap_or(date!(1935 - 01 - 01))
            + Duration::days(self.rng.range(0, 364));
        let district = self.rng.pick(DISTRICTS);
        let postcode = format!(
            "{district} {}{}{}",
            self.rng.range(1, 9),
            char::from(self.rng.pick(POSTCODE_LETTERS)),
            char::from(self.rng.pick(POSTCODE_LETTERS)),
        );
        let line = format!("{} {}", self.rng.range(1, 180), self.rng.pick(STREETS));
        let moved_in = days_ago(self.rng.range(60, 2000));
        let patient = json!({
            "resourceType": "Patient",
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}],
            "active": true,
            "name": [{
                "use": "official",
                "family": family,
                "given": [given, middle],
                "prefix": [prefix]
            }],
            "gender": if female { "female" } else { "male" },
            "birthDate": date_str(birth),
            "address": [{
                "use": "home",
                "type": "physical",
                "line": [self.care_home, line],
                "city": "London",
                "postalCode": postcode,
                "country": "GB",
                "period": {"start": date_str(moved_in)}
            }],
            "generalPractitioner": [self.practice_ref()],
            "managingOrganization": {"display": self.care_home}
        });
        let url = self.push(Source::GpSystem, patient);
        (url, family.to_owned())
    }

    fn encounters(&mut self) -> Vec<(String, Date, Date)> {
        let n = self.rng.range(2, 3);
        let mut starts: Vec<i64> = (0..n).map(|_| self.rng.range(20, 700)).collect();
        starts.sort_unstable_by(|a, b| b.cmp(a)); // oldest first
        let mut out = Vec::new();
        for ago in starts {
            let start = days_ago(ago);
            let end = start + Duration::days(self.rng.range(1, 18));
            let (code, display) = self.rng.pick(ADMISSION_REASONS);
            let enc = json!({
                "resourceType": "Encounter",
                "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP", "display": "inpatient encounter"},
                "type": [concept(SNOMED, "32485007", "Hospital admission")],
                "subject": reference(&self.patient_url),
                "period": {"start": self.date_time(start), "end": self.date_time(end)},
                "reasonCode": [concept(SNOMED, code, display)],
                "hospitalization": {
                    "admitSource": concept(SNOMED, "19712007", "Patient transfer, to another health care facility"),
                    "dischargeDisposition": {"text": "Discharged back to care home"}
                },
                "serviceProvider": self.hospital_ref()
            });
            let url = self.push(Source::HospitalEpr, enc);
            out.push((url, start, end));
        }
        out
    }

    fn conditions(&mut self) -> Vec<(String, usize)> {
        let mut chosen: Vec<usize> = (0..PROBLEMS.len())
            .filter(|i| self.rng.chance(PROBLEMS[*i].prevalence))
            .collect();
        // Three to five problems: top up or trim.
        while chosen.len() < 3 {
            let i = self.rng.below(PROBLEMS.len());
            if !chosen.contains(&i) {
                chosen.push(i);
            }
        }
        chosen.truncate(5);
        let mut out = Vec::new();
        for i in chosen {
            let p = &PROBLEMS[i];
            let onset = days_ago(self.rng.range(400, 5000));
            let recorded = onset + Duration::days(self.rng.range(0, 30));
            let cond = json!({
                "resourceType": "Condition",
                "clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
                "verificationStatus": concept("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed"),
                "category": [concept("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item", "Problem List Item")],
                "code": concept(SNOMED, p.code, p.display),
                "subject": reference(&self.patient_url),
                "onsetDateTime": date_str(onset),
                "recordedDate": self.date_time(recorded)
            });
            out.push((self.push(Source::HospitalEpr, cond), i));
        }
        out
    }

    fn allergies(&mut self) -> Vec<String> {
        let n = self.rng.range(1, 2) as usize;
        let first = self.rng.below(ALLERGIES.len());
        (0..n)
            .map(|k| {
                let (code, display, category, reaction) = ALLERGIES[(first + k) % ALLERGIES.len()];
                let reaction_code = REACTIONS
                    .iter()
                    .find(|(d, _)| *d == reaction)
                    .map_or("271807003", |(_, c)| *c);
                let recorded = days_ago(self.rng.range(300, 6000));
                let body = json!({
                    "resourceType": "AllergyIntolerance",
                    "clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active"),
                    "verificationStatus": concept("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed", "Confirmed"),
                    "type": "allergy",
                    "category": [category],
                    "criticality": if reaction == "Anaphylaxis" { "high" } else { "low" },
                    "code": concept(SNOMED, code, display),
                    "patient": reference(&self.patient_url),
                    "recordedDate": date_str(recorded),
                    "reaction": [{
                        "manifestation": [concept(SNOMED, reaction_code, reaction)],
                        "severity": if reaction == "Anaphylaxis" { "severe" } else { "moderate" }
                    }]
                });
                self.push(Source::HospitalEpr, body)
            })
            .collect()
    }

    fn medications(
        &mut self,
        problems: &[(String, usize)],
        encounter: &str,
        on: Date,
    ) -> Vec<String> {
        let mut meds: Vec<usize> = Vec::new();
        for (_, p) in problems {
            for m in PROBLEMS[*p].meds {
                if !meds.contains(m) {
                    meds.push(*m);
                }
            }
        }
        // Four to seven in all: add common ones (paracetamol, statin, PPI, senna) if short.
        for m in [0, 1, 2, 11, 9, 10] {
            if meds.len() >= 4 {
                break;
            }
            if !meds.contains(&m) {
                meds.push(m);
            }
        }
        meds.truncate(7);
        meds.into_iter()
            .map(|m| {
                let (code, name, dose) = MEDS[m];
                let body = json!({
                    "resourceType": "MedicationRequest",
                    "status": "active",
                    "intent": "order",
                    "medicationCodeableConcept": {"coding": [coding(DMD, code, name)], "text": name},
                    "subject": reference(&self.patient_url),
                    "encounter": reference(encounter),
                    "authoredOn": self.date_time(on),
                    "requester": {"display": "Discharging consultant"},
                    "dosageInstruction": [{"text": dose}],
                    "dispenseRequest": {"expectedSupplyDuration": {"value": 28, "unit": "days", "system": UCUM, "code": "d"}}
                });
                self.push(Source::HospitalEpr, body)
            })
            .collect()
    }

    fn observation(&mut self, an: &Analyte, when: &str, encounter: Option<&str>) -> String {
        let v = self.rng.normal(an.mean, an.sd).max(an.mean / 10.0);
        let value = number(v, an.decimals);
        let rounded = value.as_f64().unwrap_or(v);
        let (code, display) = match (an.low, an.high) {
            (Some(l), _) if rounded < l => ("L", "Low"),
            (_, Some(h)) if rounded > h => ("H", "High"),
            _ => ("N", "Normal"),
        };
        let q = |x: f64| json!({"value": number(x, an.decimals), "unit": an.unit, "system": UCUM, "code": an.unit});
        let mut range = Map::new();
        if let Some(l) = an.low {
            range.insert("low".into(), q(l));
        }
        if let Some(h) = an.high {
            range.insert("high".into(), q(h));
        }
        let mut obs = json!({
            "resourceType": "Observation",
            "status": "final",
            "category": [concept("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory", "Laboratory")],
            "code": concept(LOINC, an.loinc, an.display),
            "subject": reference(&self.patient_url),
            "effectiveDateTime": when,
            "issued": when.replace("+00:00", "Z"),
            "valueQuantity": {"value": value, "unit": an.unit, "system": UCUM, "code": an.unit},
            "interpretation": [concept("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", code, display)],
            "referenceRange": [Value::Object(range)]
        });
        if let (Some(e), Some(o)) = (encounter, obs.as_object_mut()) {
            o.insert("encounter".into(), reference(e));
        }
        self.push(Source::Pathology, obs)
    }

    fn report(
        &mut self,
        code: &str,
        display: &str,
        analytes: &[&Analyte],
        when: Date,
        encounter: Option<&str>,
    ) -> String {
        let at = self.date_time(when);
        let results: Vec<Value> = analytes
            .iter()
            .map(|an| reference(&self.observation(an, &at, encounter)))
            .collect();
        let mut dr = json!({
            "resourceType": "DiagnosticReport",
            "status": "final",
            "category": [concept("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB", "Laboratory")],
            "code": concept(LOINC, code, display),
            "subject": reference(&self.patient_url),
            "effectiveDateTime": at,
            "issued": at.replace("+00:00", "Z"),
            "performer": [{"display": format!("{} Pathology", self.hospital.1)}],
            "result": results
        });
        if let (Some(e), Some(o)) = (encounter, dr.as_object_mut()) {
            o.insert("encounter".into(), reference(e));
        }
        self.push(Source::Pathology, dr)
    }

    fn reports(&mut self, problems: &[usize], admissions: &[(String, Date, Date)]) -> Vec<String> {
        let mut out = Vec::new();
        // Renal function twice (once in the latest admission), blood count and liver once.
        let (enc, start, _) = admissions
            .last()
            .cloned()
            .unwrap_or_else(|| (String::new(), days_ago(30), days_ago(25)));
        let enc = (!enc.is_empty()).then_some(enc);
        let older = days_ago(self.rng.range(60, 720));
        for (i, when, e) in [
            (0, start, enc.as_deref()),
            (0, older, None),
            (1, start, enc.as_deref()),
            (2, older, None),
        ] {
            let (code, display, analytes) = PANELS[i];
            let refs: Vec<&Analyte> = analytes.iter().collect();
            out.push(self.report(code, display, &refs, when, e));
        }
        // Inflammation and disease markers.
        let mut misc: Vec<&Analyte> = vec![&CRP];
        if problems.contains(&3) {
            misc.push(&HBA1C);
        }
        if problems.contains(&1) {
            misc.push(&NTPROBNP);
        }
        let when = days_ago(self.rng.range(1, 700));
        out.push(self.report("11502-2", "Laboratory report", &misc, when, None));
        out
    }

    fn section(title: &str, code: &str, display: &str, text: &str, entries: &[String]) -> Value {
        let mut s = json!({
            "title": title,
            "code": concept(SNOMED, code, display),
            "text": {"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>{text}</p></div>")}
        });
        if let Some(o) = s.as_object_mut() {
            if entries.is_empty() {
                o.insert(
                    "emptyReason".into(),
                    concept(
                        "http://terminology.hl7.org/CodeSystem/list-empty-reason",
                        "nilknown",
                        "Nil Known",
                    ),
                );
            } else {
                o.insert(
                    "entry".into(),
                    Value::Array(entries.iter().map(|e| reference(e)).collect()),
                );
            }
        }
        s
    }

    #[allow(clippy::too_many_arguments)]
    fn composition(
        &mut self,
        family: &str,
        enc: &str,
        end: Date,
        conditions: &[String],
        meds: &[String],
        allergies: &[String],
        reports: &[String],
    ) -> String {
        let body = json!({
            "resourceType": "Composition",
            "status": "final",
            "type": concept(SNOMED, "373942005", "Discharge summary"),
            "subject": reference(&self.patient_url),
            "encounter": reference(enc),
            "date": self.date_time(end),
            "author": [self.hospital_ref()],
            "title": "Discharge summary",
            "custodian": self.hospital_ref(),
            "section": [
                Self::section("Diagnoses", "1066931000000104", "Diagnoses", &format!("Problems of {family} on discharge."), conditions),
                Self::section("Medications and medical devices", "1066911000000100", "Medications and medical devices", "Medicines on discharge; continue as prescribed.", meds),
                Self::section("Allergies and adverse reactions", "886921000000105", "Allergies and adverse reactions", "Known allergies.", allergies),
                Self::section("Investigation results", "1082101000000102", "Investigation results", "Latest laboratory results.", reports),
                Self::section("Information for the care home", "1066941000000108", "Plan and requested actions", "Encourage fluids. Review by GP within 7 days. Falls precautions.", &[])
            ]
        });
        self.push(Source::HospitalEpr, body)
    }

    fn care_plan(&mut self, conditions: &[String]) -> String {
        let start = days_ago(self.rng.range(10, 300));
        let body = json!({
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "category": [concept(SNOMED, "734163000", "Care plan")],
            "title": "Personal care and support plan",
            "description": "Support with washing, dressing and mobility; two carers for transfers; pressure area care.",
            "subject": reference(&self.patient_url),
            "period": {"start": date_str(start)},
            "created": self.date_time(start),
            "author": {"display": self.care_home},
            "addresses": conditions.iter().map(|c| reference(c)).collect::<Vec<_>>(),
            "activity": [
                {"detail": {"status": "in-progress", "description": "Reposition every four hours"}},
                {"detail": {"status": "in-progress", "description": "Food and fluid chart"}}
            ]
        });
        self.push(Source::CareHome, body)
    }

    fn flag(&mut self) -> String {
        let (code, display) = self.rng.pick(&[
            ("129839007", "At risk for falls"),
            (
                "714152005",
                "Has lasting power of attorney for health and welfare",
            ),
            (
                "1066201000000108",
                "Do not attempt cardiopulmonary resuscitation",
            ),
        ]);
        let start = days_ago(self.rng.range(10, 900));
        let body = json!({
            "resourceType": "Flag",
            "status": "active",
            "category": [concept("http://terminology.hl7.org/CodeSystem/flag-category", "safety", "Safety")],
            "code": concept(SNOMED, code, display),
            "subject": reference(&self.patient_url),
            "period": {"start": self.date_time(start)},
            "author": {"display": self.care_home}
        });
        self.push(Source::CareHome, body)
    }

    fn immunization(&mut self) -> String {
        let when = days_ago(self.rng.range(20, 400));
        let body = json!({
            "resourceType": "Immunization",
            "status": "completed",
            "vaccineCode": concept(SNOMED, "1181000221105", "Influenza vaccine"),
            "patient": reference(&self.patient_url),
            "occurrenceDateTime": self.date_time(when),
            "primarySource": true,
            "lotNumber": format!("FL{}", self.rng.range(10_000, 99_999)),
            "site": concept(SNOMED, "368208006", "Left upper arm structure"),
            "route": concept(SNOMED, "78421000", "Intramuscular route"),
            "performer": [{"actor": self.practice_ref()}]
        });
        self.push(Source::GpSystem, body)
    }
}

/// The resident `index` of the data set `seed`: a transaction Bundle.
pub fn record(seed: u64, index: u64) -> Record {
    let mut rng = Rng::new(seed ^ index.wrapping_mul(0xA24B_AED4_963E_E407));
    let _ = rng.next_u64();
    let hospital = rng.pick(HOSPITALS);
    let practice = rng.pick(PRACTICES);
    let care_home = rng.pick(CARE_HOMES);
    let mut g = Gen {
        rng,
        hospital,
        practice,
        care_home,
        entries: Vec::new(),
        patient_url: String::new(),
    };
    let nhs = nhs_number(index);
    // The Patient's fullUrl is needed before it is pushed: reserve one.
    let (patient_url, family) = g.patient(&nhs);
    g.patient_url = patient_url;
    let admissions = g.encounters();
    let conditions = g.conditions();
    let problem_idx: Vec<usize> = conditions.iter().map(|(_, p)| *p).collect();
    let allergies = g.allergies();
    let (last_enc, _, last_end) = admissions
        .last()
        .cloned()
        .unwrap_or_else(|| (String::new(), ANCHOR, ANCHOR));
    let meds = g.medications(&conditions, &last_enc, last_end);
    let reports = g.reports(&problem_idx, &admissions);
    let condition_urls: Vec<String> = conditions.into_iter().map(|(u, _)| u).collect();
    g.composition(
        &family,
        &last_enc,
        last_end,
        &condition_urls,
        &meds,
        &allergies,
        &reports,
    );
    g.care_plan(&condition_urls);
    g.flag();
    g.immunization();
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": g.entries
    });
    Record {
        index,
        nhs_number: nhs,
        bundle,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carerecord_fhir::NhsNumber;
    use carerecord_fhir::validate::validate;

    #[test]
    fn nhs_numbers_are_valid_distinct_and_in_the_test_range() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..20_000 {
            let n = nhs_number(i);
            let parsed = NhsNumber::parse(&n);
            assert!(parsed.as_ref().is_ok_and(NhsNumber::is_test_range), "{n}");
            assert!(seen.insert(n));
        }
    }

    #[test]
    fn records_are_deterministic() {
        assert_eq!(record(7, 3).bundle, record(7, 3).bundle);
        assert_ne!(record(7, 3).bundle, record(8, 3).bundle);
        assert_ne!(record(7, 3).bundle, record(7, 4).bundle);
    }

    #[test]
    fn every_resource_passes_validation() {
        for seed in [1, 2, 42, 2026, 0xDEAD_BEEF] {
            for index in 0..25 {
                let r = record(seed, index);
                let issues = validate(&r.bundle);
                assert!(issues.is_empty(), "bundle {seed}/{index}: {issues:?}");
                for res in r.resources() {
                    let issues = validate(res);
                    assert!(
                        issues.is_empty(),
                        "{seed}/{index} {}: {issues:?}",
                        res["resourceType"]
                    );
                }
            }
        }
    }

    #[test]
    fn records_have_a_patient_and_30_to_40ish_clinical_resources_with_meta() {
        let mut counts = Vec::new();
        for index in 0..200 {
            let r = record(11, index);
            let types: Vec<&str> = r
                .resources()
                .filter_map(|x| x["resourceType"].as_str())
                .collect();
            assert_eq!(types.first(), Some(&"Patient"));
            for t in [
                "Encounter",
                "Condition",
                "AllergyIntolerance",
                "MedicationRequest",
                "Observation",
                "DiagnosticReport",
                "Composition",
                "CarePlan",
                "Flag",
                "Immunization",
            ] {
                assert!(types.contains(&t), "{t} missing");
            }
            for x in r.resources() {
                assert!(x["meta"]["source"].is_string());
                assert_eq!(x["meta"]["tag"][0]["system"], SOURCE_TAG_SYSTEM);
            }
            let pc = r
                .resources()
                .next()
                .map(|p| p["address"][0]["postalCode"].clone());
            assert!(pc.is_some_and(|p| p.is_string()));
            counts.push(types.len() - 1);
        }
        let min = counts.iter().min().copied().unwrap_or(0);
        let max = counts.iter().max().copied().unwrap_or(0);
        assert!(
            (28..=45).contains(&min) && (28..=45).contains(&max),
            "{min}..{max}"
        );
    }

    #[test]
    fn references_point_at_entries_of_the_same_bundle() {
        let r = record(5, 9);
        let urls: Vec<&str> = r.bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["fullUrl"].as_str())
            .collect();
        let text = r.bundle.to_string();
        let mut n = 0;
        for piece in text.split("\"reference\":\"").skip(1) {
            let target = piece.split('"').next().unwrap_or("");
            assert!(urls.contains(&target), "{target}");
            n += 1;
        }
        assert!(n > 40);
    }
}
