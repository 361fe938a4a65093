use carerecord_fhir::VersionId;

/// What can go wrong in storage, in terms the FHIR layer maps to HTTP statuses once.
///
/// Driver errors are translated at the backend boundary; their text may name tables but never
/// holds resource content, so it is safe to log (it is never returned to clients).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("resource not found")]
    NotFound,
    #[error("resource was deleted (version {0})")]
    Gone(VersionId),
    #[error("version conflict: expected version {expected}, current is {current}")]
    VersionConflict {
        expected: VersionId,
        current: VersionId,
    },
    #[error("a resource with this id already exists")]
    AlreadyExists,
    #[error("the search matched more than one resource")]
    MultipleMatches,
    #[error("the paging cursor is not valid for this search")]
    InvalidCursor,
    #[error("the search cannot be run: {0}")]
    UnsupportedSearch(String),
    #[error("the database is busy; try again")]
    Busy,
    #[error("database error: {0}")]
    Backend(String),
}
