//! The search parameters of the FHIR R4 specification for carerecord's resource types, and the
//! Patient compartment (which patient's compartment a resource belongs to).

use carerecord_fhir::ResourceType;
use serde_json::Value;

/// A search parameter type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamKind {
    Number,
    Date,
    String,
    Token,
    Reference,
    Composite,
    Quantity,
    Uri,
    Special,
}

impl ParamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamKind::Number => "number",
            ParamKind::Date => "date",
            ParamKind::String => "string",
            ParamKind::Token => "token",
            ParamKind::Reference => "reference",
            ParamKind::Composite => "composite",
            ParamKind::Quantity => "quantity",
            ParamKind::Uri => "uri",
            ParamKind::Special => "special",
        }
    }
}

/// One search parameter as it applies to one resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchParamDef {
    pub code: String,
    pub kind: ParamKind,
    /// The canonical URL of the SearchParameter resource.
    pub url: String,
    /// The FHIRPath expression, reduced to the parts for this resource type.
    pub expression: String,
    /// For reference parameters, the resource types they may point to.
    pub targets: Vec<String>,
}

/// The parameter `code` of `resource_type` (including the `Resource`-level ones such as `_id`,
/// `_lastUpdated`, `_tag`, `_security`, `_profile`, `_source`).
pub fn lookup(resource_type: ResourceType, code: &str) -> Option<&'static SearchParamDef> {
    let _ = (resource_type, code);
    None
}

/// Every parameter of `resource_type`, sorted by code.
pub fn params_for(resource_type: ResourceType) -> Vec<&'static SearchParamDef> {
    let _ = resource_type;
    Vec::new()
}

/// The id of the patient whose compartment `resource` belongs to (FHIR R4 Patient
/// CompartmentDefinition; the first compartment parameter that names a Patient wins). A Patient
/// belongs to its own compartment. `None` for resources outside every patient compartment
/// (Organization, Practitioner, Medication, …).
pub fn patient_compartment(resource_type: ResourceType, id: &str, resource: &Value) -> Option<String> {
    let _ = (resource_type, id, resource);
    None
}
