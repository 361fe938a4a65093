//! SMART on FHIR scopes (App Launch 2.0, "Scopes and Launch Context"): the grammar, and the
//! decision whether a granted [`ScopeSet`] permits an interaction on a resource type.
//!
//! Scopes only ever narrow what the access policy already allows: the server asks the policy
//! first and these scopes second, so nothing here can widen a principal's view.
//!
//! Grammar accepted (anything else is a [`ScopeError`], which a token endpoint answers with
//! `invalid_scope`):
//! - v2 `(patient|user|system)/(Type|*).[c][r][u][d][s]`, the letters in that order, at least
//!   one, each once; optionally `?category=[system|]code` on Observation and Condition;
//! - v1 `(patient|user|system)/(Type|*).(read|write|*)`, taken as v2 `rs`, `cud` and `cruds`;
//! - `launch`, `launch/patient`, `openid`, `fhirUser`, `profile`, `offline_access`,
//!   `online_access`.

use std::fmt;

use carerecord_fhir::ResourceType;
use serde_json::Value;

/// Whose data a resource scope is about (the prefix before `/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContextKind {
    /// `patient/`: the compartment of the patient in the launch context.
    Patient,
    /// `user/`: whatever the signed-in user may see.
    User,
    /// `system/`: whatever the client system (Backend Services) may see.
    System,
}

impl ContextKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ContextKind::Patient => "patient",
            ContextKind::User => "user",
            ContextKind::System => "system",
        }
    }
}

/// A FHIR REST interaction, as scopes see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interaction {
    Read,
    Vread,
    HistoryInstance,
    /// Type-level and system-level history: a search over versions.
    HistoryType,
    Search,
    Create,
    Update,
    Patch,
    Delete,
}

impl Interaction {
    /// The v2 permission letter this interaction needs.
    pub fn letter(self) -> char {
        match self {
            Interaction::Create => 'c',
            Interaction::Read | Interaction::Vread | Interaction::HistoryInstance => 'r',
            Interaction::Update | Interaction::Patch => 'u',
            Interaction::Delete => 'd',
            Interaction::Search | Interaction::HistoryType => 's',
        }
    }

    /// The narrowest scope that would permit this interaction, for refusals ("needs
    /// `user/Condition.r`").
    pub fn needed_scope(self, ctx: ContextKind, rt: ResourceType) -> String {
        format!("{}/{}.{}", ctx.as_str(), rt.as_str(), self.letter())
    }

    fn bit(self) -> Perms {
        Perms::from_letter(self.letter()).unwrap_or(Perms(0))
    }
}

/// A scope that is not about resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Special {
    Launch,
    LaunchPatient,
    OpenId,
    FhirUser,
    Profile,
    OfflineAccess,
    OnlineAccess,
}

impl Special {
    const ALL: [Special; 7] = [
        Special::Launch,
        Special::LaunchPatient,
        Special::OpenId,
        Special::FhirUser,
        Special::Profile,
        Special::OfflineAccess,
        Special::OnlineAccess,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Special::Launch => "launch",
            Special::LaunchPatient => "launch/patient",
            Special::OpenId => "openid",
            Special::FhirUser => "fhirUser",
            Special::Profile => "profile",
            Special::OfflineAccess => "offline_access",
            Special::OnlineAccess => "online_access",
        }
    }
}

/// Why a scope string was refused. The message names the offending scope (scopes carry no
/// personal data, so it is safe to show and log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("unknown scope {0:?}")]
    Unknown(String),
    #[error("malformed scope {scope:?}: {reason}")]
    Malformed { scope: String, reason: &'static str },
    #[error("scope {0:?} names a resource type this server does not hold")]
    UnsupportedType(String),
    #[error(
        "scope {0:?} has a restriction this server does not support \
         (only one `category=[system|]code` on Observation or Condition)"
    )]
    UnsupportedRestriction(String),
}

/// The v2 permission letters, as a bit set in `cruds` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Perms(u8);

impl Perms {
    const LETTERS: [char; 5] = ['c', 'r', 'u', 'd', 's'];
    // Bit 4 is `c`, bit 0 is `s`.
    const READ: Perms = Perms(0b01001); // r s
    const WRITE: Perms = Perms(0b10110); // c u d
    const ALL: Perms = Perms(0b11111);

    fn from_letter(c: char) -> Option<Perms> {
        Perms::LETTERS
            .iter()
            .position(|&l| l == c)
            .map(|i| Perms(1 << (4 - i)))
    }

    fn contains(self, other: Perms) -> bool {
        other.0 != 0 && self.0 & other.0 == other.0
    }

    fn letters(self) -> String {
        Perms::LETTERS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << (4 - i)) != 0)
            .map(|(_, l)| *l)
            .collect()
    }
}

/// A `?category=` restriction: only resources with a category coding that matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Restriction {
    system: Option<String>,
    code: String,
}

impl Restriction {
    /// The search parameter the restriction constrains.
    pub fn param(&self) -> &'static str {
        "category"
    }

    /// The token value as written in a FHIR search (`system|code` or `code`).
    pub fn search_value(&self) -> String {
        match &self.system {
            Some(s) => format!("{s}|{}", self.code),
            None => self.code.clone(),
        }
    }

    /// Whether a resource body satisfies the restriction: one of its `category` codings has
    /// the code (and the system, when the restriction names one).
    pub fn matches(&self, body: &Value) -> bool {
        let Some(cats) = body.get("category").and_then(Value::as_array) else {
            return false;
        };
        cats.iter()
            .filter_map(|c| c.get("coding").and_then(Value::as_array))
            .flatten()
            .any(|coding| {
                coding.get("code").and_then(Value::as_str) == Some(self.code.as_str())
                    && match &self.system {
                        Some(s) => coding.get("system").and_then(Value::as_str) == Some(s),
                        None => true,
                    }
            })
    }
}

/// One `context/Type.perms[?restriction]` scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ResourceScope {
    context: ContextKind,
    /// `None` for `*`.
    target: Option<ResourceType>,
    perms: Perms,
    restriction: Option<Restriction>,
    /// Written in v1 syntax: kept so a v1 client gets its own syntax back when the
    /// permissions still have a v1 name.
    v1: bool,
}

impl ResourceScope {
    /// The scope both `self` and `other` grant, if any.
    fn intersect(&self, other: &ResourceScope) -> Option<ResourceScope> {
        if self.context != other.context {
            return None;
        }
        let target = match (self.target, other.target) {
            (None, t) | (t, None) => t,
            (Some(a), Some(b)) if a == b => Some(a),
            _ => return None,
        };
        let perms = Perms(self.perms.0 & other.perms.0);
        if perms.0 == 0 {
            return None;
        }
        let restriction = match (&self.restriction, &other.restriction) {
            (None, r) | (r, None) => r.clone(),
            (Some(a), Some(b)) if a == b => Some(a.clone()),
            _ => return None,
        };
        Some(ResourceScope {
            context: self.context,
            target,
            perms,
            restriction,
            v1: self.v1,
        })
    }
}

impl fmt::Display for ResourceScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = self.target.map_or("*", ResourceType::as_str);
        write!(f, "{}/{}.", self.context.as_str(), target)?;
        let v1 = if self.v1 && self.restriction.is_none() {
            if self.perms == Perms::READ {
                Some("read")
            } else if self.perms == Perms::WRITE {
                Some("write")
            } else if self.perms == Perms::ALL {
                Some("*")
            } else {
                None
            }
        } else {
            None
        };
        match v1 {
            Some(word) => f.write_str(word)?,
            None => f.write_str(&self.perms.letters())?,
        }
        if let Some(r) = &self.restriction {
            write!(f, "?{}={}", r.param(), r.search_value())?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Item {
    Resource(ResourceScope),
    Special(Special),
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Resource(r) => r.fmt(f),
            Item::Special(s) => f.write_str(s.as_str()),
        }
    }
}

/// What granted scopes say about one interaction on one type in one context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permit {
    /// Permitted for every resource of the type.
    Granted,
    /// Permitted only for resources that match at least one of these restrictions.
    Restricted(Vec<Restriction>),
    /// Not permitted.
    Denied,
}

/// A parsed, de-duplicated set of scopes, in the order first written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet {
    items: Vec<Item>,
}

/// The `scopes_supported` a SMART configuration advertises: every special scope and the
/// wildcard resource scopes of each context (any type, any subset of `cruds`, v1 names too).
pub const SCOPES_SUPPORTED: [&str; 16] = [
    "openid",
    "fhirUser",
    "profile",
    "launch",
    "launch/patient",
    "offline_access",
    "online_access",
    "patient/*.cruds",
    "patient/*.rs",
    "patient/*.read",
    "user/*.cruds",
    "user/*.rs",
    "user/*.read",
    "system/*.cruds",
    "system/*.rs",
    "system/*.read",
];

impl ScopeSet {
    /// Parses a space-separated scope string. An empty string is an empty set; one unknown or
    /// malformed scope refuses the whole string.
    pub fn parse(s: &str) -> Result<ScopeSet, ScopeError> {
        let mut set = ScopeSet::default();
        for token in s.split_ascii_whitespace() {
            set.push(parse_one(token)?);
        }
        Ok(set)
    }

    fn push(&mut self, item: Item) {
        if !self.items.contains(&item) {
            self.items.push(item);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether the set grants a non-resource scope (`launch/patient`, `offline_access`, …).
    pub fn has(&self, special: Special) -> bool {
        self.items.contains(&Item::Special(special))
    }

    /// Whether any resource scope is of this context (`patient/…`, `user/…`, `system/…`).
    pub fn has_context(&self, ctx: ContextKind) -> bool {
        self.resources().any(|r| r.context == ctx)
    }

    fn resources(&self) -> impl Iterator<Item = &ResourceScope> {
        self.items.iter().filter_map(|i| match i {
            Item::Resource(r) => Some(r),
            Item::Special(_) => None,
        })
    }

    /// Whether the `ctx/…` scopes permit `interaction` on `rt`, and for which resources.
    /// Only scopes of exactly this context count: the caller decides which contexts apply to
    /// the principal (`patient/` needs a patient in context).
    pub fn permits(&self, ctx: ContextKind, rt: ResourceType, interaction: Interaction) -> Permit {
        let need = interaction.bit();
        let mut restrictions = Vec::new();
        for r in self.resources() {
            if r.context != ctx || r.target.is_some_and(|t| t != rt) || !r.perms.contains(need) {
                continue;
            }
            match &r.restriction {
                None => return Permit::Granted,
                Some(x) => {
                    if !restrictions.contains(x) {
                        restrictions.push(x.clone());
                    }
                }
            }
        }
        if restrictions.is_empty() {
            Permit::Denied
        } else {
            Permit::Restricted(restrictions)
        }
    }

    /// What both `self` (say, what a client asked for) and `allowed` (what it is registered
    /// for) grant: each resource scope cut down to the part `allowed` covers (`system/*.rs`
    /// within `system/Patient.rs system/Observation.cruds` is `system/Patient.rs
    /// system/Observation.rs`), and the special scopes both hold.
    pub fn narrow(&self, allowed: &ScopeSet) -> ScopeSet {
        let mut out = ScopeSet::default();
        for item in &self.items {
            match item {
                Item::Special(s) => {
                    if allowed.has(*s) {
                        out.push(item.clone());
                    }
                }
                Item::Resource(r) => {
                    for a in allowed.resources() {
                        if let Some(x) = r.intersect(a) {
                            out.push(Item::Resource(x));
                        }
                    }
                }
            }
        }
        out
    }
}

impl fmt::Display for ScopeSet {
    /// The canonical granted string: each scope once, in the order first written, v2 letters
    /// in `cruds` order (v1 names kept where the client wrote v1 and they still fit).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            item.fmt(f)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ScopeSet {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ScopeSet::parse(s)
    }
}

fn parse_one(token: &str) -> Result<Item, ScopeError> {
    if let Some(s) = Special::ALL.into_iter().find(|s| s.as_str() == token) {
        return Ok(Item::Special(s));
    }
    let malformed = |reason| ScopeError::Malformed {
        scope: token.to_owned(),
        reason,
    };
    let Some((prefix, rest)) = token.split_once('/') else {
        return Err(ScopeError::Unknown(token.to_owned()));
    };
    let context = match prefix {
        "patient" => ContextKind::Patient,
        "user" => ContextKind::User,
        "system" => ContextKind::System,
        _ => return Err(ScopeError::Unknown(token.to_owned())),
    };
    let (body, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let Some((type_name, perm_text)) = body.split_once('.') else {
        return Err(malformed("expected Type.permissions"));
    };
    let target = match type_name {
        "*" => None,
        "" => return Err(malformed("no resource type")),
        name => Some(
            name.parse::<ResourceType>()
                .map_err(|_| ScopeError::UnsupportedType(token.to_owned()))?,
        ),
    };
    let (perms, v1) = match perm_text {
        "read" => (Perms::READ, true),
        "write" => (Perms::WRITE, true),
        "*" => (Perms::ALL, true),
        letters => (parse_letters(letters).ok_or_else(|| {
            malformed("permissions must be v1 read, write or *, or v2 letters from cruds in that order, each once")
        })?, false),
    };
    let restriction = match query {
        None => None,
        Some(q) => {
            if v1 {
                return Err(malformed("v1 scopes take no restriction"));
            }
            Some(parse_restriction(token, target, q)?)
        }
    };
    Ok(Item::Resource(ResourceScope {
        context,
        target,
        perms,
        restriction,
        v1,
    }))
}

fn parse_letters(s: &str) -> Option<Perms> {
    if s.is_empty() {
        return None;
    }
    let mut bits = 0u8;
    let mut last: Option<usize> = None;
    for c in s.chars() {
        let i = Perms::LETTERS.iter().position(|&l| l == c)?;
        // Strictly increasing positions: the letters in `cruds` order, none repeated.
        if last.is_some_and(|l| i <= l) {
            return None;
        }
        last = Some(i);
        bits |= 1 << (4 - i);
    }
    Some(Perms(bits))
}

fn parse_restriction(
    token: &str,
    target: Option<ResourceType>,
    query: &str,
) -> Result<Restriction, ScopeError> {
    let unsupported = || ScopeError::UnsupportedRestriction(token.to_owned());
    if !matches!(
        target,
        Some(ResourceType::Observation | ResourceType::Condition)
    ) {
        return Err(unsupported());
    }
    let (param, value) = query.split_once('=').ok_or_else(unsupported)?;
    if param != "category" || query.contains('&') {
        return Err(unsupported());
    }
    let value = percent_decode(value).ok_or(ScopeError::Malformed {
        scope: token.to_owned(),
        reason: "bad percent-encoding in the restriction",
    })?;
    // One token value: a comma would be a FHIR "or", which a scope need not express (grant
    // two scopes instead).
    if value.contains(',') {
        return Err(unsupported());
    }
    let (system, code) = match value.split_once('|') {
        Some((s, c)) => (Some(s), c),
        None => (None, value.as_str()),
    };
    if code.is_empty() || code.contains('|') || system.is_some_and(str::is_empty) {
        return Err(ScopeError::Malformed {
            scope: token.to_owned(),
            reason: "the category must be `code` or `system|code`",
        });
    }
    Ok(Restriction {
        system: system.map(str::to_owned),
        code: code.to_owned(),
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ContextKind::{Patient, System, User};
    use ResourceType::{Condition, Observation};

    fn set(s: &str) -> ScopeSet {
        ScopeSet::parse(s).unwrap()
    }

    const ALL_INTERACTIONS: [Interaction; 9] = [
        Interaction::Read,
        Interaction::Vread,
        Interaction::HistoryInstance,
        Interaction::HistoryType,
        Interaction::Search,
        Interaction::Create,
        Interaction::Update,
        Interaction::Patch,
        Interaction::Delete,
    ];

    fn granted(s: &ScopeSet, ctx: ContextKind, rt: ResourceType) -> Vec<Interaction> {
        ALL_INTERACTIONS
            .into_iter()
            .filter(|i| s.permits(ctx, rt, *i) == Permit::Granted)
            .collect()
    }

    #[test]
    fn v1_names_mean_the_same_as_their_v2_letters() {
        for (v1, v2) in [("read", "rs"), ("write", "cud"), ("*", "cruds")] {
            for ctx in ["patient", "user", "system"] {
                for ty in ["Observation", "*"] {
                    let a = set(&format!("{ctx}/{ty}.{v1}"));
                    let b = set(&format!("{ctx}/{ty}.{v2}"));
                    for (c, rt) in [
                        (Patient, Observation),
                        (User, Condition),
                        (System, Observation),
                    ] {
                        assert_eq!(granted(&a, c, rt), granted(&b, c, rt), "{ctx}/{ty}.{v1}");
                    }
                }
            }
        }
    }

    #[test]
    fn each_letter_grants_its_interactions_and_nothing_else() {
        let s = set("user/Observation.r");
        assert_eq!(
            granted(&s, User, Observation),
            vec![
                Interaction::Read,
                Interaction::Vread,
                Interaction::HistoryInstance
            ]
        );
        let s = set("user/Observation.s");
        assert_eq!(
            granted(&s, User, Observation),
            vec![Interaction::HistoryType, Interaction::Search]
        );
        let s = set("user/Observation.cud");
        assert_eq!(
            granted(&s, User, Observation),
            vec![
                Interaction::Create,
                Interaction::Update,
                Interaction::Patch,
                Interaction::Delete
            ]
        );
    }

    #[test]
    fn a_wildcard_covers_every_type_but_only_its_context() {
        let s = set("patient/*.rs");
        for rt in ResourceType::ALL {
            assert_eq!(s.permits(Patient, *rt, Interaction::Read), Permit::Granted);
            assert_eq!(s.permits(User, *rt, Interaction::Read), Permit::Denied);
            assert_eq!(s.permits(System, *rt, Interaction::Read), Permit::Denied);
            assert_eq!(s.permits(Patient, *rt, Interaction::Create), Permit::Denied);
        }
    }

    #[test]
    fn a_typed_scope_grants_nothing_on_other_types() {
        let s = set("user/Observation.rs");
        assert_eq!(
            s.permits(User, Observation, Interaction::Read),
            Permit::Granted
        );
        assert_eq!(
            s.permits(User, Condition, Interaction::Read),
            Permit::Denied
        );
        assert_eq!(
            s.permits(User, Condition, Interaction::Search),
            Permit::Denied
        );
    }

    #[test]
    fn letters_out_of_order_repeated_or_unknown_are_refused() {
        for bad in [
            "user/Observation.sr",
            "user/Observation.rr",
            "user/Observation.",
            "user/Observation.x",
            "user/Observation.scrud",
            "user/Observation.READ",
            "user/Observation",
            "user/.rs",
            "user/*.rs?",
        ] {
            assert!(
                matches!(
                    ScopeSet::parse(bad),
                    Err(ScopeError::Malformed { .. } | ScopeError::UnsupportedRestriction(_))
                ),
                "{bad}: {:?}",
                ScopeSet::parse(bad)
            );
        }
        for ok in [
            "user/Observation.c",
            "user/Observation.cruds",
            "user/Observation.rs",
            "user/Observation.cd",
        ] {
            assert!(ScopeSet::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn unknown_scopes_contexts_and_types_refuse_the_whole_string() {
        assert_eq!(
            ScopeSet::parse("openid admin"),
            Err(ScopeError::Unknown("admin".into()))
        );
        assert!(matches!(
            ScopeSet::parse("group/*.rs"),
            Err(ScopeError::Unknown(_))
        ));
        assert!(matches!(
            ScopeSet::parse("launch/encounter"),
            Err(ScopeError::Unknown(_))
        ));
        assert_eq!(
            ScopeSet::parse("patient/Goal.rs"),
            Err(ScopeError::UnsupportedType("patient/Goal.rs".into()))
        );
        assert!(ScopeSet::parse("").unwrap().is_empty());
    }

    #[test]
    fn special_scopes_are_recognised() {
        let s = set("launch launch/patient openid fhirUser profile offline_access online_access");
        for sp in Special::ALL {
            assert!(s.has(sp), "{sp:?}");
        }
        assert!(!set("openid").has(Special::LaunchPatient));
        assert!(!s.has_context(Patient));
    }

    #[test]
    fn category_restrictions_grant_only_matching_resources() {
        let s = set(
            "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
        );
        let Permit::Restricted(rs) = s.permits(Patient, Observation, Interaction::Search) else {
            panic!("expected a restriction");
        };
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].param(), "category");
        assert_eq!(
            rs[0].search_value(),
            "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
        );
        let lab = serde_json::json!({"resourceType": "Observation", "category": [{"coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}]});
        let vitals = serde_json::json!({"resourceType": "Observation", "category": [{"coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}]});
        let other_system = serde_json::json!({"resourceType": "Observation", "category": [{"coding": [
            {"system": "http://example.org", "code": "laboratory"}]}]});
        assert!(rs[0].matches(&lab));
        assert!(!rs[0].matches(&vitals));
        assert!(!rs[0].matches(&other_system));
        assert!(!rs[0].matches(&serde_json::json!({"resourceType": "Observation"})));
        // An unrestricted scope beside it grants everything.
        let both = set("patient/Observation.rs?category=laboratory patient/Observation.r");
        assert_eq!(
            both.permits(Patient, Observation, Interaction::Read),
            Permit::Granted
        );
        assert!(matches!(
            both.permits(Patient, Observation, Interaction::Search),
            Permit::Restricted(_)
        ));
        // Percent-encoded bars decode.
        assert_eq!(
            set("user/Condition.rs?category=http://x%7Cproblem-list-item").to_string(),
            "user/Condition.rs?category=http://x|problem-list-item"
        );
    }

    #[test]
    fn restrictions_beyond_category_on_observation_and_condition_are_refused_clearly() {
        for bad in [
            "patient/Observation.rs?code=1234",
            "patient/Observation.rs?category=a&category=b",
            "patient/Observation.rs?category=a,b",
            "patient/Patient.rs?category=a",
            "patient/*.rs?category=a",
        ] {
            assert_eq!(
                ScopeSet::parse(bad),
                Err(ScopeError::UnsupportedRestriction(bad.into())),
                "{bad}"
            );
        }
        assert!(matches!(
            ScopeSet::parse("patient/Observation.read?category=a"),
            Err(ScopeError::Malformed { .. })
        ));
        assert!(matches!(
            ScopeSet::parse("patient/Observation.rs?category=a|"),
            Err(ScopeError::Malformed { .. })
        ));
    }

    #[test]
    fn the_canonical_string_dedupes_keeps_order_and_v1_names() {
        let s =
            set("openid  patient/Observation.read patient/*.rs openid patient/Observation.read");
        assert_eq!(
            s.to_string(),
            "openid patient/Observation.read patient/*.rs"
        );
        assert_eq!(set(&s.to_string()), s);
        assert_eq!(set("user/*.*").to_string(), "user/*.*");
        assert_eq!(set("user/*.write").to_string(), "user/*.write");
    }

    #[test]
    fn narrowing_intersects_types_letters_and_specials() {
        let registered = set("system/Patient.rs system/Observation.cruds");
        let asked = set("system/*.rs");
        assert_eq!(
            asked.narrow(&registered).to_string(),
            "system/Patient.rs system/Observation.rs"
        );
        // Nothing of another context survives.
        assert!(set("user/*.rs").narrow(&registered).is_empty());
        // A v1 request narrowed to what still has a v1 name keeps it; otherwise v2.
        assert_eq!(
            set("system/Observation.*").narrow(&registered).to_string(),
            "system/Observation.*"
        );
        assert_eq!(
            set("system/*.*").narrow(&set("system/*.rs")).to_string(),
            "system/*.read"
        );
        assert_eq!(
            set("system/*.write")
                .narrow(&set("system/*.cr"))
                .to_string(),
            "system/*.c"
        );
        // Restrictions: the narrower one wins, different ones cancel out.
        let lab = "system/Observation.rs?category=laboratory";
        assert_eq!(set("system/*.rs").narrow(&set(lab)).to_string(), lab);
        assert!(
            set(lab)
                .narrow(&set("system/Observation.rs?category=vital-signs"))
                .is_empty()
        );
        assert_eq!(
            set("openid launch system/Patient.r")
                .narrow(&set("launch system/*.rs"))
                .to_string(),
            "launch system/Patient.r"
        );
        // Narrowing never widens.
        let wide = set("system/*.cruds");
        for rt in ResourceType::ALL {
            for i in ALL_INTERACTIONS {
                if asked.narrow(&wide).permits(System, *rt, i) == Permit::Granted {
                    assert_eq!(asked.permits(System, *rt, i), Permit::Granted);
                }
            }
        }
    }

    #[test]
    fn refusals_name_the_scope_that_was_missing() {
        assert_eq!(
            Interaction::Read.needed_scope(User, Condition),
            "user/Condition.r"
        );
        assert_eq!(
            Interaction::Patch.needed_scope(System, Observation),
            "system/Observation.u"
        );
    }

    #[test]
    fn advertised_scopes_parse() {
        for s in SCOPES_SUPPORTED {
            assert!(ScopeSet::parse(s).is_ok(), "{s}");
        }
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_never_panics(s in "\\PC*") {
                let _ = ScopeSet::parse(&s);
            }

            #[test]
            fn scope_like_strings_parse_or_refuse_and_round_trip(
                s in "(patient|user|system|launch|openid|x)(/(\\*|Observation|Patient|Goal)?(\\.[cruds*a-z]{0,6})?(\\?category=[a-z|%0-9C]{0,8})?)?"
            ) {
                if let Ok(set) = ScopeSet::parse(&s) {
                    // The canonical string means the same scopes.
                    prop_assert_eq!(ScopeSet::parse(&set.to_string()), Ok(set));
                }
            }
        }
    }
}
