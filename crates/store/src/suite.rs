//! The behavioural suite every backend must pass (filled in by the storage work).
