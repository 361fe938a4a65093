//! Reference data: places, names, and the clinical codes NHS systems use.
//!
//! Names, streets, organisations and ODS codes are made up. Clinical codes are real SNOMED CT,
//! dm+d, LOINC and UCUM concepts chosen to look plausible, not clinical advice.

/// An Integrated Care System: short name, synthetic ODS code, name, boroughs with postcode districts.
pub(crate) struct Ics {
    pub short: &'static str,
    pub ods: &'static str,
    pub name: &'static str,
    pub boroughs: &'static [(&'static str, &'static [&'static str])],
}

pub(crate) const ICSS: &[Ics] = &[
    Ics {
        short: "NCL",
        ods: "ZQNCL",
        name: "NHS North Central London Integrated Care Board",
        boroughs: &[
            ("Barnet", &["N3", "N12", "NW4"]),
            ("Camden", &["NW1", "NW3", "NW5"]),
            ("Enfield", &["EN1", "N9", "N21"]),
            ("Haringey", &["N8", "N15", "N17"]),
            ("Islington", &["N1", "N7", "N19"]),
        ],
    },
    Ics {
        short: "NEL",
        ods: "ZQNEL",
        name: "NHS North East London Integrated Care Board",
        boroughs: &[
            ("Hackney", &["E5", "E8", "N16"]),
            ("Tower Hamlets", &["E1", "E3", "E14"]),
            ("Newham", &["E6", "E13", "E15"]),
            ("Waltham Forest", &["E4", "E10", "E17"]),
            ("Redbridge", &["IG1", "IG4", "E11"]),
            ("Havering", &["RM1", "RM3", "RM11"]),
            ("Barking and Dagenham", &["IG11", "RM8", "RM10"]),
        ],
    },
    Ics {
        short: "NWL",
        ods: "ZQNWL",
        name: "NHS North West London Integrated Care Board",
        boroughs: &[
            ("Brent", &["NW10", "HA9", "NW2"]),
            ("Ealing", &["W5", "W13", "UB6"]),
            ("Hammersmith and Fulham", &["W6", "W12", "SW6"]),
            ("Harrow", &["HA1", "HA2", "HA3"]),
            ("Hillingdon", &["UB8", "UB10", "HA4"]),
            ("Hounslow", &["TW3", "TW4", "W4"]),
            ("Kensington and Chelsea", &["W8", "W10", "SW3"]),
            ("Westminster", &["W2", "W9", "SW1V"]),
        ],
    },
    Ics {
        short: "SEL",
        ods: "ZQSEL",
        name: "NHS South East London Integrated Care Board",
        boroughs: &[
            ("Bexley", &["DA5", "DA6", "DA15"]),
            ("Bromley", &["BR1", "BR2", "BR6"]),
            ("Greenwich", &["SE3", "SE9", "SE10"]),
            ("Lambeth", &["SW2", "SW9", "SE27"]),
            ("Lewisham", &["SE4", "SE6", "SE13"]),
            ("Southwark", &["SE5", "SE15", "SE22"]),
        ],
    },
    Ics {
        short: "SWL",
        ods: "ZQSWL",
        name: "NHS South West London Integrated Care Board",
        boroughs: &[
            ("Croydon", &["CR0", "CR7", "SE25"]),
            ("Kingston upon Thames", &["KT1", "KT2", "KT6"]),
            ("Merton", &["SW19", "SW20", "CR4"]),
            ("Richmond upon Thames", &["TW1", "TW9", "TW10"]),
            ("Sutton", &["SM1", "SM2", "SM5"]),
            ("Wandsworth", &["SW11", "SW12", "SW18"]),
        ],
    },
];

/// Acute trusts (made up): ODS code, name, ICS index, borough index, main hospital site.
pub(crate) const TRUSTS: &[(&str, &str, usize, usize, &str)] = &[
    (
        "ZR1",
        "Northern Heights Hospitals NHS Foundation Trust",
        0,
        1,
        "Northern Heights Hospital",
    ),
    (
        "ZR2",
        "Fleet Valley University Hospitals NHS Trust",
        0,
        3,
        "Fleet Valley Hospital",
    ),
    (
        "ZR3",
        "Lea Marshes Hospitals NHS Trust",
        1,
        0,
        "Lea Marshes Hospital",
    ),
    (
        "ZR4",
        "Westway Hospitals NHS Trust",
        2,
        2,
        "Westway Hospital",
    ),
    (
        "ZR5",
        "Thames Bank Hospitals NHS Foundation Trust",
        3,
        3,
        "Thames Bank Hospital",
    ),
    (
        "ZR6",
        "Blackheath and Downs NHS Trust",
        3,
        2,
        "Blackheath Hospital",
    ),
    (
        "ZR7",
        "Wandle Valley Hospitals NHS Trust",
        4,
        2,
        "Wandle Valley Hospital",
    ),
];

/// The pathology laboratory (made up): ODS code, name, ICS index, borough index.
pub(crate) const LAB: (&str, &str, usize, usize) =
    ("ZL1", "London Synthetic Pathology Partnership", 3, 5);

pub(crate) const PRACTICE_PLACES: &[&str] = &[
    "Canonbury",
    "Archway",
    "Lordship",
    "Hollybush",
    "Parkside",
    "Riverside",
    "Elmwood",
    "Greenway",
    "Chestnut",
    "Marsh Lane",
    "Kingfisher",
    "Beaumont",
    "Ashgrove",
    "Brookfield",
    "Fairfield",
    "Heathview",
    "Meadowbank",
    "Oakwood",
    "Springfield",
    "Tudor Way",
];
pub(crate) const PRACTICE_SUFFIXES: &[&str] = &[
    "Medical Centre",
    "Surgery",
    "Health Centre",
    "Group Practice",
    "Family Practice",
];

pub(crate) const CARE_HOMES: &[&str] = &[
    "Rosewood House",
    "The Limes",
    "Highfield Court",
    "Oakleigh Lodge",
    "Cedar Grange",
    "Willow Bank",
    "St Anne's House",
    "Abbeyfield House",
    "Hollybrook",
    "Magnolia Court",
    "Laburnum Lodge",
    "The Beeches",
    "Lavender Gardens",
    "Primrose Hill House",
    "Sycamore Lodge",
    "Bluebell Court",
    "Heathermead",
    "Orchard View",
];

pub(crate) const STREETS: &[&str] = &[
    "Elm Row",
    "Church Lane",
    "Victoria Road",
    "Station Road",
    "Park Avenue",
    "Albion Road",
    "Mildmay Grove",
    "Coldharbour Lane",
    "Fortis Green",
    "Green Lanes",
    "Lea Bridge Road",
    "Uxbridge Road",
    "Kings Avenue",
    "Queens Drive",
    "Mill Lane",
    "The Broadway",
    "High Street",
    "Manor Road",
    "Grange Road",
    "Cedar Close",
    "Orchard Way",
    "Windmill Hill",
];
pub(crate) const POSTCODE_LETTERS: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";

pub(crate) const FEMALE_GIVEN: &[&str] = &[
    "Margaret",
    "Joan",
    "Dorothy",
    "Patricia",
    "Jean",
    "Sheila",
    "Barbara",
    "Maureen",
    "Doreen",
    "Irene",
    "Eileen",
    "Audrey",
    "Brenda",
    "Sylvia",
    "Pauline",
    "Valerie",
    "June",
    "Iris",
    "Elsie",
    "Winifred",
    "Gladys",
    "Olive",
    "Edna",
    "Marjorie",
    "Kathleen",
    "Pamela",
    "Rita",
    "Shirley",
    "Hazel",
    "Beryl",
    "Phyllis",
    "Vera",
    "Ivy",
    "Mavis",
    "Nora",
    "Susan",
    "Linda",
    "Carol",
    "Janet",
    "Christine",
];
pub(crate) const MALE_GIVEN: &[&str] = &[
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
    "Keith",
    "Graham",
];
pub(crate) const FAMILY: &[&str] = &[
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
    "Ahmed",
    "Kowalski",
    "Nowak",
    "Adeyemi",
    "Chowdhury",
    "Georgiou",
    "Fernandes",
];

/// A dm+d medicine: VMP code, name, usual dose instructions.
pub(crate) type Med = (&'static str, &'static str, &'static str);

pub(crate) const MEDS: &[Med] = &[
    (
        "322236009",
        "Paracetamol 500mg tablets",
        "Two tablets up to four times a day when required for pain",
    ), // 0
    (
        "320000009",
        "Atorvastatin 20mg tablets",
        "One tablet at night",
    ), // 1
    (
        "317335000",
        "Omeprazole 20mg gastro-resistant capsules",
        "One capsule each morning",
    ), // 2
    ("326857007", "Donepezil 5mg tablets", "One tablet at night"), // 3
    (
        "317972000",
        "Furosemide 40mg tablets",
        "One tablet each morning",
    ), // 4
    (
        "318590006",
        "Bisoprolol 2.5mg tablets",
        "One tablet each morning",
    ), // 5
    (
        "320176004",
        "Salbutamol 100micrograms/dose inhaler CFC free",
        "Two puffs when required for breathlessness",
    ), // 6
    (
        "325278007",
        "Metformin 500mg tablets",
        "One tablet twice a day with meals",
    ), // 7
    (
        "703907005",
        "Apixaban 2.5mg tablets",
        "One tablet twice a day",
    ), // 8
    (
        "319283006",
        "Amlodipine 5mg tablets",
        "One tablet each morning",
    ), // 9
    (
        "318900002",
        "Ramipril 2.5mg capsules",
        "One capsule each morning",
    ), // 10
    ("374646004", "Senna 7.5mg tablets", "Two tablets at night"),  // 11
    (
        "319740004",
        "Warfarin 1mg tablets",
        "As directed by the anticoagulation clinic (see yellow book)",
    ), // 12
    (
        "329724003",
        "Alendronic acid 70mg tablets",
        "One tablet once a week, before breakfast, with a full glass of water",
    ), // 13
    (
        "329652003",
        "Adcal-D3 chewable tablets",
        "One tablet twice a day",
    ), // 14
    (
        "319775004",
        "Clopidogrel 75mg tablets",
        "One tablet each morning",
    ), // 15
    (
        "321211008",
        "Sertraline 50mg tablets",
        "One tablet each morning",
    ), // 16
];

/// Acute medicines (dm+d): code, name, instructions.
pub(crate) const ACUTE_MEDS: &[Med] = &[
    (
        "323509004",
        "Amoxicillin 500mg capsules",
        "One capsule three times a day for 5 days",
    ),
    (
        "324430000",
        "Trimethoprim 200mg tablets",
        "One tablet twice a day for 3 days",
    ),
    (
        "324357002",
        "Nitrofurantoin 50mg capsules",
        "One capsule four times a day for 3 days",
    ),
    (
        "322280009",
        "Codeine 30mg tablets",
        "One tablet up to four times a day when required",
    ),
    (
        "317896006",
        "Lactulose 3.35g/5ml oral solution",
        "15ml twice a day",
    ),
];

/// A long-term condition: SNOMED CT code, display, dm+d medicines (indexes into [`MEDS`]),
/// prevalence among care home residents, prevalence in the community.
pub(crate) struct Problem {
    pub code: &'static str,
    pub display: &'static str,
    pub meds: &'static [usize],
    pub in_home: f64,
    pub community: f64,
}

pub(crate) const PROBLEMS: &[Problem] = &[
    Problem {
        code: "52448006",
        display: "Dementia",
        meds: &[3],
        in_home: 0.7,
        community: 0.08,
    },
    Problem {
        code: "84114007",
        display: "Heart failure",
        meds: &[4, 5, 10],
        in_home: 0.3,
        community: 0.1,
    },
    Problem {
        code: "13645005",
        display: "Chronic obstructive lung disease",
        meds: &[6],
        in_home: 0.2,
        community: 0.12,
    },
    Problem {
        code: "44054006",
        display: "Diabetes mellitus type 2",
        meds: &[7],
        in_home: 0.3,
        community: 0.18,
    },
    Problem {
        code: "709044004",
        display: "Chronic kidney disease",
        meds: &[],
        in_home: 0.35,
        community: 0.12,
    },
    Problem {
        code: "49436004",
        display: "Atrial fibrillation",
        meds: &[8],
        in_home: 0.25,
        community: 0.08,
    },
    Problem {
        code: "230690007",
        display: "Cerebrovascular accident",
        meds: &[15, 1],
        in_home: 0.2,
        community: 0.05,
    },
    Problem {
        code: "64859006",
        display: "Osteoporosis",
        meds: &[13, 14],
        in_home: 0.35,
        community: 0.1,
    },
    Problem {
        code: "161898004",
        display: "Falls",
        meds: &[],
        in_home: 0.45,
        community: 0.08,
    },
    Problem {
        code: "38341003",
        display: "Hypertensive disorder, systemic arterial",
        meds: &[9],
        in_home: 0.5,
        community: 0.3,
    },
];

/// Index of a problem in [`PROBLEMS`].
pub(crate) const P_DIABETES: usize = 3;
pub(crate) const P_CKD: usize = 4;
pub(crate) const P_AF: usize = 5;
pub(crate) const P_FALLS: usize = 8;
pub(crate) const P_HEART_FAILURE: usize = 1;
pub(crate) const P_DEMENTIA: usize = 0;

/// Allergies: SNOMED code, display, category, reaction SNOMED code, reaction display.
pub(crate) const ALLERGIES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "91936005",
        "Allergy to penicillin",
        "medication",
        "126485001",
        "Urticaria",
    ),
    (
        "294505008",
        "Allergy to amoxicillin",
        "medication",
        "271807003",
        "Skin rash",
    ),
    (
        "294461002",
        "Allergy to trimethoprim",
        "medication",
        "271807003",
        "Skin rash",
    ),
    (
        "293586001",
        "Allergy to aspirin",
        "medication",
        "56018004",
        "Wheezing",
    ),
    (
        "300913006",
        "Shellfish allergy",
        "food",
        "41291007",
        "Angioedema",
    ),
    (
        "91934008",
        "Allergy to nut",
        "food",
        "39579001",
        "Anaphylaxis",
    ),
    (
        "300916003",
        "Latex allergy",
        "environment",
        "271807003",
        "Skin rash",
    ),
];

/// Reasons for admission: SNOMED code, display, imaging (LOINC code, display, conclusion, SNOMED
/// conclusion code, display) if any.
pub(crate) struct Admission {
    pub code: &'static str,
    pub display: &'static str,
    pub imaging: Option<(
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    )>,
    /// dm+d medicine started on discharge, if any (index into [`ACUTE_MEDS`] or `None`).
    pub started: Option<usize>,
}

pub(crate) const ADMISSIONS: &[Admission] = &[
    Admission {
        code: "233604007",
        display: "Pneumonia",
        imaging: Some((
            "36643-5",
            "XR Chest 2 Views",
            "Consolidation in the right lower lobe in keeping with pneumonia. No effusion.",
            "233604007",
            "Pneumonia",
        )),
        started: Some(0),
    },
    Admission {
        code: "68566005",
        display: "Urinary tract infectious disease",
        imaging: None,
        started: Some(2),
    },
    Admission {
        code: "217082002",
        display: "Accidental fall",
        imaging: Some((
            "24725-4",
            "CT Head",
            "No acute intracranial haemorrhage or fracture. Small vessel ischaemic change.",
            "281900007",
            "No abnormality detected",
        )),
        started: None,
    },
    Admission {
        code: "2776000",
        display: "Delirium",
        imaging: Some((
            "24725-4",
            "CT Head",
            "Generalised involutional change. No acute abnormality.",
            "281900007",
            "No abnormality detected",
        )),
        started: None,
    },
    Admission {
        code: "267036007",
        display: "Dyspnea",
        imaging: Some((
            "36643-5",
            "XR Chest 2 Views",
            "Cardiomegaly with upper lobe diversion and small bilateral effusions, in keeping with fluid overload.",
            "42343007",
            "Congestive heart failure",
        )),
        started: None,
    },
    Admission {
        code: "5913000",
        display: "Fracture of neck of femur",
        imaging: Some((
            "37637-6",
            "XR Hip",
            "Displaced intracapsular fracture of the left femoral neck.",
            "5913000",
            "Fracture of neck of femur",
        )),
        started: Some(3),
    },
    Admission {
        code: "34095006",
        display: "Dehydration",
        imaging: None,
        started: None,
    },
];

/// Immunisations: SNOMED vaccine code, display, how often (days between doses; 0 = once).
pub(crate) const VACCINES: &[(&str, &str, i64)] = &[
    ("1181000221105", "Influenza vaccine", 365),
    ("1119349007", "SARS-CoV-2 mRNA vaccine", 365),
    ("836398006", "Pneumococcal vaccine", 0),
];

/// A lab analyte: LOINC code, display, UCUM unit, reference low/high, decimals, mean, spread.
pub(crate) struct Analyte {
    pub loinc: &'static str,
    pub display: &'static str,
    pub unit: &'static str,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub decimals: usize,
    pub mean: f64,
    pub sd: f64,
}

macro_rules! analyte {
    ($l:expr, $d:expr, $u:expr, $lo:expr, $hi:expr, $dec:expr, $m:expr, $sd:expr) => {
        Analyte {
            loinc: $l,
            display: $d,
            unit: $u,
            low: $lo,
            high: $hi,
            decimals: $dec,
            mean: $m,
            sd: $sd,
        }
    };
}

pub(crate) const UE: &[Analyte] = &[
    analyte!(
        "2951-2",
        "Sodium [Moles/volume] in Serum or Plasma",
        "mmol/L",
        Some(133.0),
        Some(146.0),
        0,
        138.0,
        3.5
    ),
    analyte!(
        "2823-3",
        "Potassium [Moles/volume] in Serum or Plasma",
        "mmol/L",
        Some(3.5),
        Some(5.3),
        1,
        4.4,
        0.45
    ),
    analyte!(
        "22664-7",
        "Urea [Moles/volume] in Serum or Plasma",
        "mmol/L",
        Some(2.5),
        Some(7.8),
        1,
        7.0,
        2.2
    ),
    analyte!(
        "14682-9",
        "Creatinine [Moles/volume] in Serum or Plasma",
        "umol/L",
        Some(45.0),
        Some(104.0),
        0,
        95.0,
        25.0
    ),
    analyte!(
        "62238-1",
        "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or Blood by Creatinine-based formula (CKD-EPI)",
        "mL/min/{1.73_m2}",
        Some(60.0),
        None,
        0,
        62.0,
        14.0
    ),
];
pub(crate) const FBC: &[Analyte] = &[
    analyte!(
        "718-7",
        "Hemoglobin [Mass/volume] in Blood",
        "g/L",
        Some(115.0),
        Some(165.0),
        0,
        122.0,
        13.0
    ),
    analyte!(
        "6690-2",
        "Leukocytes [#/volume] in Blood by Automated count",
        "10*9/L",
        Some(4.0),
        Some(11.0),
        1,
        7.4,
        2.0
    ),
    analyte!(
        "777-3",
        "Platelets [#/volume] in Blood by Automated count",
        "10*9/L",
        Some(150.0),
        Some(400.0),
        0,
        250.0,
        65.0
    ),
];
pub(crate) const HBA1C: &[Analyte] = &[analyte!(
    "59261-8",
    "Hemoglobin A1c/Hemoglobin.total in Blood by IFCC protocol",
    "mmol/mol",
    Some(20.0),
    Some(41.0),
    0,
    55.0,
    8.0
)];
pub(crate) const INR: &[Analyte] = &[analyte!(
    "6301-6",
    "INR in Platelet poor plasma by Coagulation assay",
    "{INR}",
    Some(2.0),
    Some(3.0),
    1,
    2.5,
    0.45
)];

/// Lab panels: LOINC report code, display, analytes.
pub(crate) const PANEL_UE: (&str, &str, &[Analyte]) =
    ("24362-6", "Renal function 2000 panel - Serum or Plasma", UE);
pub(crate) const PANEL_FBC: (&str, &str, &[Analyte]) =
    ("58410-2", "CBC panel - Blood by Automated count", FBC);
pub(crate) const PANEL_HBA1C: (&str, &str, &[Analyte]) = (
    "59261-8",
    "Hemoglobin A1c/Hemoglobin.total in Blood by IFCC protocol",
    HBA1C,
);
pub(crate) const PANEL_INR: (&str, &str, &[Analyte]) = (
    "6301-6",
    "INR in Platelet poor plasma by Coagulation assay",
    INR,
);

/// The PRSB eDischarge headings used here: SNOMED CT code and title.
pub(crate) mod heading {
    pub(crate) const GP_PRACTICE: (&str, &str) = ("886711000000101", "GP practice");
    pub(crate) const DEMOGRAPHICS: (&str, &str) = ("886731000000109", "Patient demographics");
    pub(crate) const ADMISSION: (&str, &str) = ("886781000000108", "Admission details");
    pub(crate) const DISCHARGE: (&str, &str) = ("886811000000106", "Discharge details");
    pub(crate) const PRESENTING: (&str, &str) =
        ("886891000000102", "Presenting complaints or issues");
    pub(crate) const DIAGNOSES: (&str, &str) = ("887161000000102", "Diagnoses");
    pub(crate) const PROCEDURES: (&str, &str) = ("887171000000109", "Procedures");
    pub(crate) const CLINICAL_SUMMARY: (&str, &str) = ("887181000000106", "Clinical summary");
    pub(crate) const INVESTIGATIONS: (&str, &str) = ("1082101000000102", "Investigation results");
    pub(crate) const MEDICATIONS: (&str, &str) =
        ("933361000000108", "Medications and medical devices");
    pub(crate) const ALLERGIES: (&str, &str) =
        ("886921000000105", "Allergies and adverse reactions");
    pub(crate) const SAFETY_ALERTS: (&str, &str) = ("886931000000107", "Safety alerts");
    pub(crate) const LEGAL: (&str, &str) = ("886961000000102", "Legal information");
    pub(crate) const SOCIAL: (&str, &str) = ("887051000000101", "Social context");
    pub(crate) const PLAN: (&str, &str) = ("887201000000105", "Plan and requested actions");
    pub(crate) const INFORMATION_GIVEN: (&str, &str) =
        ("1052951000000105", "Information and advice given");
    pub(crate) const PERSON_COMPLETING: (&str, &str) =
        ("887231000000104", "Person completing record");
}

pub(crate) const DOCTOR_NAMES: &[&str] = &[
    "Dr A Okonkwo",
    "Dr S Patel",
    "Dr R Hughes",
    "Dr M Chen",
    "Dr L Fernandes",
    "Dr J Adeyemi",
    "Dr K Novak",
    "Dr H Rahman",
];
