//! Every portal page that shows clinical content (a residents list, a record section, a
//! search by NHS number) writes its audit entry, with the portal as the channel, and waits
//! for it to be durable before the page is sent: a look that cannot be accounted for does not
//! happen. The entry is built by the API's own audit code, so both channels record the same
//! fields.

use carerecord_server::AppState;
use carerecord_server::access::Access;
use carerecord_server::audit::{AuditNote, record};
use carerecord_store::{AuditAction, AuditOutcome, Channel, StoredResource};

use crate::page::PageError;

/// What one page view touched.
pub struct View<'a> {
    pub action: AuditAction,
    pub outcome: AuditOutcome,
    pub rule: &'a str,
    pub resources: &'a [StoredResource],
    /// People touched beyond those of `resources` (a refused look names its person).
    pub patients: Vec<String>,
    /// Seen under an emergency-access grant.
    pub emergency: bool,
}

pub async fn write(
    state: &AppState,
    access: &Access,
    client: Option<String>,
    view: View<'_>,
) -> Result<(), PageError> {
    let mut note = AuditNote::of(view.action, view.resources);
    note.patients.extend(view.patients);
    note.patients.sort();
    note.patients.dedup();
    let mut r = record(
        &access.principal,
        view.action,
        view.outcome,
        view.rule,
        &note,
        client,
    );
    r.channel = Channel::Portal;
    if view.emergency {
        r.purpose_of_use = Some("ETREAT".to_owned());
    }
    state
        .store
        .append_audit(vec![r])
        .await
        .map_err(|e| PageError::Internal(format!("audit: {e}")))
}
