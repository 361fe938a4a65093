//! The organisations and the plan of who lives where.

use crate::person;
use crate::refdata::{self, CARE_HOMES, ICSS, LAB, POSTCODE_LETTERS, STREETS, TRUSTS};
use crate::rng::{Rng, mix};
use crate::{
    BED_COUNT_EXTENSION, ODS_SYSTEM, ORGANISATION_KIND_SYSTEM, Options, RECORD_SYSTEM_CODES,
    RECORD_SYSTEM_EXTENSION, SOURCE_ORGANISATION_TAG, SOURCE_SYSTEM_TAG,
};
use serde_json::{Value, json};

/// One organisation of the plan.
#[derive(Debug, Clone)]
pub(crate) struct Org {
    pub id: String,
    pub ods: String,
    pub name: String,
    pub ics: usize,
    pub borough: &'static str,
    pub line: String,
    pub postcode: String,
}

impl Org {
    pub(crate) fn reference(&self) -> String {
        format!("Organization/{}", self.id)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Home {
    pub org: Org,
    pub beds: u32,
    pub nursing: bool,
    pub electronic: bool,
    /// The GP practice aligned with the home (index into `practices`).
    pub practice: usize,
}

/// The awkward cases real systems meet; each is given to one person of the default set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Awkward {
    TwoHospitals,
    NoNhsNumber,
    Unverified,
    Merged,
    Objection,
    Sensitive,
    MultiSource,
}

impl Awkward {
    pub(crate) const ALL: [Awkward; 7] = [
        Awkward::TwoHospitals,
        Awkward::NoNhsNumber,
        Awkward::Unverified,
        Awkward::Merged,
        Awkward::Objection,
        Awkward::Sensitive,
        Awkward::MultiSource,
    ];

    fn describe(self, pid: &str) -> String {
        match self {
            Awkward::TwoHospitals => "known to two hospitals under different local ids (two MRN identifiers with different trust ODS-based systems)".to_owned(),
            Awkward::NoNhsNumber => "no NHS number (identified only by a hospital MRN)".to_owned(),
            Awkward::Unverified => "NHS number present but not verified (verification status 02)".to_owned(),
            Awkward::Merged => format!("merged record: Patient/{pid}-old is a retired duplicate (active=false, link replaced-by Patient/{pid})"),
            Awkward::Objection => "objected to sharing (Consent with a deny provision)".to_owned(),
            Awkward::Sensitive => "sensitive item: a sexual-health Condition labelled STD and restricted (R)".to_owned(),
            Awkward::MultiSource => "the same medicine from several sources (GP MedicationRequest and hospital discharge MedicationStatement with the same dm+d code)".to_owned(),
        }
    }
}

/// What happened to a resident in the last few days that their home needs to know: every home
/// has one of each, so the residents list always has an "in hospital" and a "discharged, new
/// discharge summary" to show (and test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recent {
    /// Admitted to hospital one to five days ago and still there.
    InHospital,
    /// Discharged back to the home one to three days ago, with a discharge summary.
    JustDischarged,
}

#[derive(Debug, Clone)]
pub(crate) struct PersonPlan {
    /// The care home (index into `homes`) for residents.
    pub home: Option<usize>,
    pub practice: usize,
    pub trust: usize,
    pub second_trust: Option<usize>,
    pub ics: usize,
    pub borough: usize,
    pub awkward: Option<Awkward>,
    pub recent: Option<Recent>,
}

/// A synthetic London: built once from [`Options`], then asked for organisations and people.
#[derive(Debug, Clone)]
pub struct London {
    pub(crate) seed: u64,
    /// "Today" for the records (days since 1970-01-01), from [`crate::Options::as_of`].
    pub(crate) today: i64,
    pub(crate) icss: Vec<Org>,
    pub(crate) practices: Vec<Org>,
    pub(crate) trusts: Vec<Org>,
    pub(crate) lab: Org,
    pub(crate) homes: Vec<Home>,
    pub(crate) plan: Vec<PersonPlan>,
}

pub(crate) fn postcode(rng: &mut Rng, district: &str) -> String {
    format!(
        "{district} {}{}{}",
        rng.range(1, 9),
        char::from(rng.pick(POSTCODE_LETTERS, b'A')),
        char::from(rng.pick(POSTCODE_LETTERS, b'B')),
    )
}

fn district(rng: &mut Rng, ics: usize, borough: usize) -> &'static str {
    let districts = ICSS
        .get(ics)
        .and_then(|i| i.boroughs.get(borough))
        .map_or(&[][..], |b| b.1);
    rng.pick(districts, "N1")
}

fn borough_name(ics: usize, borough: usize) -> &'static str {
    ICSS.get(ics)
        .and_then(|i| i.boroughs.get(borough))
        .map_or("Camden", |b| b.0)
}

fn boroughs_in(ics: usize) -> usize {
    ICSS.get(ics).map_or(1, |i| i.boroughs.len())
}

fn org(rng: &mut Rng, ods: String, name: String, ics: usize, borough: usize) -> Org {
    let d = district(rng, ics, borough);
    Org {
        id: format!("org-{}", ods.to_lowercase()),
        line: format!("{} {}", rng.range(1, 240), rng.pick(STREETS, "High Street")),
        postcode: postcode(rng, d),
        ods,
        name,
        ics,
        borough: borough_name(ics, borough),
    }
}

impl London {
    pub fn new(opts: &Options) -> London {
        let mut rng = Rng::new(mix(opts.seed, 0x4C4F_4E44_4F4E));
        let icss: Vec<Org> = ICSS
            .iter()
            .enumerate()
            .map(|(i, ics)| Org {
                id: format!("org-{}", ics.ods.to_lowercase()),
                ods: ics.ods.to_owned(),
                name: ics.name.to_owned(),
                ics: i,
                borough: "",
                line: String::new(),
                postcode: String::new(),
            })
            .collect();
        let trusts: Vec<Org> = TRUSTS
            .iter()
            .map(|(ods, name, ics, b, _)| {
                org(&mut rng, (*ods).to_owned(), (*name).to_owned(), *ics, *b)
            })
            .collect();
        let lab = org(&mut rng, LAB.0.to_owned(), LAB.1.to_owned(), LAB.2, LAB.3);
        let n_practices = (opts.patients / 50).clamp(ICSS.len() as u32, 2000) as usize;
        let mut practices = Vec::with_capacity(n_practices);
        let mut borough_of_practice = Vec::with_capacity(n_practices);
        for p in 0..n_practices {
            let ics = p % ICSS.len();
            let b = rng.below(boroughs_in(ics));
            let place = rng.pick(refdata::PRACTICE_PLACES, "Parkside");
            let suffix = rng.pick(refdata::PRACTICE_SUFFIXES, "Surgery");
            let name = format!("{place} {suffix}");
            practices.push(org(&mut rng, format!("ZG{:04}", p + 1), name, ics, b));
            borough_of_practice.push((ics, b));
        }
        let practice_near = |rng: &mut Rng, ics: usize, b: usize| -> usize {
            let same: Vec<usize> = (0..n_practices)
                .filter(|p| borough_of_practice.get(*p) == Some(&(ics, b)))
                .collect();
            if !same.is_empty() {
                return rng.pick(&same, 0);
            }
            let in_ics: Vec<usize> = (0..n_practices).filter(|p| p % ICSS.len() == ics).collect();
            rng.pick(&in_ics, 0)
        };
        let mut homes = Vec::new();
        for h in 0..opts.care_homes as usize {
            let ics = h % ICSS.len();
            let b = rng.below(boroughs_in(ics));
            let nursing = rng.chance(0.45);
            let beds = if nursing {
                rng.range(30, 90)
            } else {
                rng.range(18, 60)
            } as u32;
            // The first home is electronic and the second paper-based, so both kinds exist.
            let electronic = match h {
                0 => true,
                1 => false,
                _ => rng.chance(0.7),
            };
            let base = CARE_HOMES
                .get(h % CARE_HOMES.len())
                .copied()
                .unwrap_or("Rosewood House");
            let name = if h < CARE_HOMES.len() {
                base.to_owned()
            } else {
                format!(
                    "{base} ({}, {})",
                    borough_name(ics, b),
                    h / CARE_HOMES.len() + 1
                )
            };
            let mut o = org(&mut rng, format!("ZC{:04}", h + 1), name, ics, b);
            o.line = format!("{}, {}", o.name, o.line);
            let practice = practice_near(&mut rng, ics, b);
            homes.push(Home {
                org: o,
                beds,
                nursing,
                electronic,
                practice,
            });
        }
        let trusts_in = |ics: usize| -> Vec<usize> {
            TRUSTS
                .iter()
                .enumerate()
                .filter(|(_, t)| t.2 == ics)
                .map(|(i, _)| i)
                .collect()
        };
        let mut occupied = vec![0u32; homes.len()];
        let mut plan = Vec::with_capacity(opts.patients as usize);
        for _ in 0..opts.patients {
            let mut home = None;
            if !homes.is_empty() && rng.chance(0.65) {
                let start = rng.below(homes.len());
                for k in 0..homes.len() {
                    let h = (start + k) % homes.len();
                    let (Some(hm), Some(occ)) = (homes.get(h), occupied.get_mut(h)) else {
                        continue;
                    };
                    if f64::from(*occ + 1) <= f64::from(hm.beds) * 0.92 {
                        *occ += 1;
                        home = Some(h);
                        break;
                    }
                }
            }
            let (ics, borough, practice) = match home.and_then(|h| homes.get(h)) {
                Some(hm) => {
                    let ics = hm.org.ics;
                    let b = ICSS
                        .get(ics)
                        .and_then(|i| i.boroughs.iter().position(|x| x.0 == hm.org.borough))
                        .unwrap_or(0);
                    let practice = if rng.chance(0.9) {
                        hm.practice
                    } else {
                        practice_near(&mut rng, ics, b)
                    };
                    (ics, b, practice)
                }
                None => {
                    let ics = rng.below(ICSS.len());
                    let b = rng.below(boroughs_in(ics));
                    (ics, b, practice_near(&mut rng, ics, b))
                }
            };
            let trust = rng.pick(&trusts_in(ics), 0);
            plan.push(PersonPlan {
                home,
                practice,
                trust,
                second_trust: None,
                ics,
                borough,
                awkward: None,
                recent: None,
            });
        }
        // The awkward cases go to the first residents after person 0 (then anyone left).
        let mut order: Vec<usize> = (1..plan.len())
            .filter(|i| plan.get(*i).is_some_and(|p| p.home.is_some()))
            .collect();
        order.extend((1..plan.len()).filter(|i| plan.get(*i).is_some_and(|p| p.home.is_none())));
        for (case, i) in Awkward::ALL.into_iter().zip(order) {
            if let Some(p) = plan.get_mut(i) {
                p.awkward = Some(case);
                if case == Awkward::TwoHospitals {
                    p.second_trust = Some((p.trust + 3) % TRUSTS.len());
                }
            }
        }
        // In every home, its first two residents without an awkward case (person 0 aside):
        // one in hospital now, one just back.
        for h in 0..homes.len() {
            let residents: Vec<usize> = (1..plan.len())
                .filter(|i| {
                    plan.get(*i)
                        .is_some_and(|p| p.home == Some(h) && p.awkward.is_none())
                })
                .take(2)
                .collect();
            for (recent, i) in [Recent::InHospital, Recent::JustDischarged]
                .into_iter()
                .zip(residents)
            {
                if let Some(p) = plan.get_mut(i) {
                    p.recent = Some(recent);
                }
            }
        }
        London {
            seed: opts.seed,
            today: opts.as_of.day_number(),
            icss,
            practices,
            trusts,
            lab,
            homes,
            plan,
        }
    }

    /// The number of people.
    pub fn people(&self) -> u32 {
        self.plan.len() as u32
    }

    /// The id of person `i`'s Patient resource.
    pub fn patient_id(i: u32) -> String {
        format!("pat-{i:06}")
    }

    /// Organizations — the five London ICSs, GP practices, acute trusts, the pathology lab and
    /// the care homes — and a Location for each care home.
    pub fn organisations(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for ics in &self.icss {
            out.push(self.organisation(ics, "ics", "Integrated Care Board", None, None));
        }
        for p in &self.practices {
            out.push(self.organisation(
                p,
                "gp-practice",
                "GP practice",
                None,
                self.icss.get(p.ics),
            ));
        }
        for t in &self.trusts {
            out.push(self.organisation(
                t,
                "acute-trust",
                "Acute trust",
                None,
                self.icss.get(t.ics),
            ));
        }
        out.push(self.organisation(
            &self.lab,
            "pathology-lab",
            "Pathology laboratory",
            None,
            self.icss.get(self.lab.ics),
        ));
        for h in &self.homes {
            let (kind, display) = if h.nursing {
                ("care-home-nursing", "Care home with nursing")
            } else {
                ("care-home-residential", "Residential care home")
            };
            out.push(self.organisation(&h.org, kind, display, Some(h), self.icss.get(h.org.ics)));
        }
        for h in &self.homes {
            out.push(json!({
                "resourceType": "Location",
                "id": format!("loc-{}", h.org.ods.to_lowercase()),
                "meta": directory_meta(&h.org),
                "identifier": [{"system": ODS_SYSTEM, "value": h.org.ods}],
                "status": "active",
                "name": h.org.name,
                "mode": "instance",
                "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "PTRES", "display": "Patient's Residence"}], "text": "Care home"}],
                "address": address(&h.org).get(0).cloned().unwrap_or_default(),
                "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": "bu", "display": "Building"}]},
                "managingOrganization": {"reference": h.org.reference(), "display": h.org.name}
            }));
        }
        out
    }

    fn organisation(
        &self,
        o: &Org,
        kind: &str,
        display: &str,
        home: Option<&Home>,
        ics: Option<&Org>,
    ) -> Value {
        let mut v = json!({
            "resourceType": "Organization",
            "id": o.id,
            "meta": directory_meta(o),
        });
        let Some(obj) = v.as_object_mut() else {
            return v;
        };
        if let Some(h) = home {
            let (code, d) = if h.electronic {
                ("electronic", "Electronic care record system")
            } else {
                ("paper", "Paper-based records")
            };
            obj.insert(
                "extension".into(),
                json!([
                    {"url": BED_COUNT_EXTENSION, "valueInteger": h.beds},
                    {"url": RECORD_SYSTEM_EXTENSION, "valueCoding": {"system": RECORD_SYSTEM_CODES, "code": code, "display": d}}
                ]),
            );
        }
        obj.insert(
            "identifier".into(),
            json!([{"system": ODS_SYSTEM, "value": o.ods}]),
        );
        obj.insert("active".into(), json!(true));
        obj.insert(
            "type".into(),
            json!([{"coding": [{"system": ORGANISATION_KIND_SYSTEM, "code": kind, "display": display}], "text": display}]),
        );
        obj.insert("name".into(), json!(o.name));
        if kind == "ics"
            && let Some(ics) = ICSS.get(o.ics)
        {
            obj.insert("alias".into(), json!([ics.short]));
        }
        if !o.postcode.is_empty() {
            obj.insert("address".into(), address(o));
        }
        if let Some(ics) = ics {
            obj.insert(
                "partOf".into(),
                json!({"reference": ics.reference(), "display": ics.name}),
            );
        }
        v
    }

    /// Person `i` (0-based) and their whole record as a FHIR `transaction` Bundle of
    /// `PUT [type]/[id]` entries. Out of range: a Bundle with no entries.
    pub fn person_bundle(&self, i: u32) -> Value {
        match self.plan.get(i as usize) {
            Some(plan) => person::bundle(self, i, plan),
            None => json!({"resourceType": "Bundle", "type": "transaction"}),
        }
    }

    /// Where the awkward cases live: (description, patient id) pairs.
    pub fn awkward_cases(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for case in Awkward::ALL {
            if let Some(i) = self.plan.iter().position(|p| p.awkward == Some(case)) {
                let pid = London::patient_id(i as u32);
                out.push((case.describe(&pid), pid));
            }
        }
        out
    }
}

pub(crate) fn address(o: &Org) -> Value {
    json!([{
        "use": "work",
        "type": "physical",
        "line": o.line.split(", ").collect::<Vec<_>>(),
        "city": "London",
        "district": o.borough,
        "postalCode": o.postcode,
        "country": "GB"
    }])
}

fn directory_meta(o: &Org) -> Value {
    json!({
        "source": "https://systems.carerecord.example/ods-directory",
        "tag": [
            {"system": SOURCE_ORGANISATION_TAG, "code": o.ods, "display": o.name},
            {"system": SOURCE_SYSTEM_TAG, "code": "ods-directory", "display": "Organisation directory (synthetic ODS)"}
        ]
    })
}
