//! Logical ids and version ids, checked once at the edge.

use std::fmt;

/// A FHIR `id`: 1–64 characters of `A-Z a-z 0-9 - .`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogicalId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("'{0}' is not a valid FHIR id (1-64 characters of A-Z, a-z, 0-9, '-' and '.')")]
    InvalidId(String),
    #[error("'{0}' is not a valid version id (a positive whole number)")]
    InvalidVersion(String),
}

/// Whether `s` matches the FHIR `id` regex `[A-Za-z0-9\-\.]{1,64}`.
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

impl LogicalId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if is_valid_id(s) {
            Ok(LogicalId(s.to_owned()))
        } else {
            Err(IdError::InvalidId(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for LogicalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A resource version: carerecord numbers versions 1, 2, 3, … per resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionId(i64);

impl VersionId {
    pub const FIRST: VersionId = VersionId(1);

    pub fn new(n: i64) -> Result<Self, IdError> {
        if n >= 1 {
            Ok(VersionId(n))
        } else {
            Err(IdError::InvalidVersion(n.to_string()))
        }
    }

    pub fn parse(s: &str) -> Result<Self, IdError> {
        s.parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .map(VersionId)
            .ok_or_else(|| IdError::InvalidVersion(s.to_owned()))
    }

    pub fn get(self) -> i64 {
        self.0
    }

    pub fn next(self) -> VersionId {
        VersionId(self.0 + 1)
    }

    /// The weak ETag form, `W/"3"`.
    pub fn etag(self) -> String {
        format!("W/\"{}\"", self.0)
    }

    /// Reads `W/"3"`, `"3"` or `3` as sent in `If-Match`.
    pub fn from_etag(s: &str) -> Result<Self, IdError> {
        let t = s.trim();
        let t = t.strip_prefix("W/").unwrap_or(t);
        let t = t.trim_matches('"');
        Self::parse(t)
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_fhir_id_rule() {
        assert!(LogicalId::parse("abc-123.x").is_ok());
        assert!(LogicalId::parse(&"a".repeat(64)).is_ok());
        assert!(LogicalId::parse(&"a".repeat(65)).is_err());
        assert!(LogicalId::parse("").is_err());
        assert!(LogicalId::parse("has space").is_err());
        assert!(LogicalId::parse("under_score").is_err());
    }

    #[test]
    fn etags_parse_in_weak_strong_and_bare_forms() {
        let v = VersionId::new(3).unwrap();
        assert_eq!(v.etag(), "W/\"3\"");
        assert_eq!(VersionId::from_etag("W/\"3\""), Ok(v));
        assert_eq!(VersionId::from_etag("\"3\""), Ok(v));
        assert_eq!(VersionId::from_etag("3"), Ok(v));
        assert!(VersionId::from_etag("W/\"0\"").is_err());
        assert!(VersionId::from_etag("W/\"x\"").is_err());
    }
}
