//! The registry of sending systems (HL7 v2 `MSH-3`/`MSH-4`), each acting for one organisation.
//!
//! A table of its own rather than the OAuth client registry: a feed is identified by what it
//! writes in MSH, not by a credential, and one organisation often has several feeds (PAS,
//! laboratory, document system). The organisation must exist; its ODS code becomes the source
//! of everything the system sends.

use carerecord_access::Visibility;
use carerecord_fhir::{LogicalId, ResourceType};
use carerecord_store::ingest::{self, Hl7System, IngestOp};
use carerecord_store::{ResourceStore, StoreError, now_micros};
use serde_json::Value;

use crate::IngestError;

const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

/// Registers a sending system for organisation `org_id` (its ODS code is read from the
/// Organization resource).
pub async fn add(
    store: &dyn ResourceStore,
    name: &str,
    org_id: &str,
    msh_application: &str,
    msh_facility: &str,
) -> Result<Hl7System, IngestError> {
    let id = LogicalId::parse(org_id)
        .map_err(|e| IngestError::Invalid(format!("organisation id: {e}")))?;
    let org = match store
        .read(ResourceType::Organization, &id, &Visibility::All)
        .await
    {
        Ok(o) => o,
        Err(StoreError::NotFound | StoreError::Gone(_)) => {
            return Err(IngestError::NotFound(format!(
                "Organization/{org_id} does not exist"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let body: Value =
        serde_json::from_str(&org.body).map_err(|e| IngestError::Internal(e.to_string()))?;
    let ods = body
        .get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|i| i.get("system").and_then(Value::as_str) == Some(ODS_SYSTEM))
        .and_then(|i| i.get("value"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            IngestError::Invalid(format!("Organization/{org_id} has no ODS code identifier"))
        })?
        .to_owned();
    if msh_application.is_empty() || msh_facility.is_empty() {
        return Err(IngestError::Invalid(
            "MSH application and facility must not be empty".into(),
        ));
    }
    let system = Hl7System {
        id: format!("hl7-{}-{}", slug(msh_facility), slug(msh_application)),
        name: name.to_owned(),
        org_id: org_id.to_owned(),
        ods,
        msh_application: msh_application.to_owned(),
        msh_facility: msh_facility.to_owned(),
        created: now_micros(),
    };
    let mut tx = store.begin().await?;
    ingest::tx_do(tx.as_mut(), IngestOp::PutSystem(system.clone()))
        .await
        .map_err(|e| match e {
            StoreError::AlreadyExists => IngestError::Invalid(format!(
                "a system sending as {msh_application}/{msh_facility} is registered already"
            )),
            e => e.into(),
        })?;
    tx.commit().await?;
    Ok(system)
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// Every registered system.
pub async fn list(store: &dyn ResourceStore) -> Result<Vec<Hl7System>, IngestError> {
    Ok(ingest::systems(store).await?)
}
