//! What a principal may see, as data the store compiles into every query that reads records
//! (search, counts, includes, history, `$everything`, reads). Deciding happens in
//! [`crate::policy`]; the store only translates.

use carerecord_fhir::ResourceType;

/// The rows a request may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Everything: carerecord's own service identity and the command line.
    All,
    /// What one role at one organisation may see.
    Scoped(Scope),
}

/// The visibility rules of one principal at one moment.
///
/// A row is visible when its type is among `types` (all types when `None`) and either its
/// source organisation is the principal's, or it is not sensitive, its patient has not
/// objected, and its patient is in the organisation's care (or under a live break-glass grant
/// of this principal). Rows outside every patient compartment (organisations, practitioners,
/// locations) are visible unless sensitive. With `patient`, rows of any other patient's
/// compartment are not visible either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The organisation's logical id, which care relationships name.
    pub org_id: String,
    /// Its ODS code, which source-organisation tags name.
    pub org_ods: String,
    /// The principal's key in break-glass grants.
    pub principal_key: String,
    /// The types the role may see; `None` for all.
    pub types: Option<Vec<ResourceType>>,
    /// For a restricted view: only the latest discharge summary per person (whose sections
    /// the server then trims).
    pub latest_discharge_only: bool,
    /// Now, µs since the epoch: open relationships and break-glass grants are live until then.
    pub now: i64,
    /// Encounters that ended at or after this still count as a relationship.
    pub encounter_cutoff: i64,
    /// Only this patient's compartment (and rows in no compartment): a token whose SMART
    /// `patient/` scopes name a patient in context. `None` for no such narrowing.
    pub patient: Option<String>,
    /// Whether one person is in the organisation's care (not objected, and a relationship or
    /// a live break-glass grant of this principal), asked once by the store for a request
    /// about that person (`carerecord_store::engine::pin`), so the compiled condition answers
    /// it for that person's rows instead of asking again for every row. The policy never sets
    /// it; it lives no longer than the request's statements.
    pub known: Option<KnownCare>,
}

/// See [`Scope::known`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownCare {
    pub patient: String,
    pub in_care: bool,
    /// The request has found that none of its matches is another person's: rows of anyone
    /// else are then refused without asking about them (fail-closed, should one appear
    /// between the request's statements).
    pub alone: bool,
}

/// SNOMED CT "Discharge summary" — the Composition type the restricted view shows.
pub const DISCHARGE_SUMMARY_SNOMED: &str = "373942005";
/// LOINC "Discharge summary".
pub const DISCHARGE_SUMMARY_LOINC: &str = "18842-5";
