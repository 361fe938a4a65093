//! Argon2id password (and client secret) hashes as PHC strings.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::IdentityError;

/// How much work a new hash costs. Verification reads the cost from the PHC string, so
/// hashes made with either setting verify alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PasswordCost {
    /// The argon2 crate's recommended Argon2id parameters (OWASP's m=19 MiB, t=2, p=1): for
    /// real accounts.
    #[default]
    Recommended,
    /// Cheap parameters for throw-away demo accounts and tests, whose passwords are printed
    /// anyway; they keep `carerecord demo` quick to start.
    Light,
}

fn argon2(cost: PasswordCost) -> Result<Argon2<'static>, IdentityError> {
    let params = match cost {
        PasswordCost::Recommended => Params::default(),
        PasswordCost::Light => Params::new(1024, 1, 1, None)
            .map_err(|e| IdentityError::Internal(format!("argon2 parameters: {e}")))?,
    };
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `password` with a fresh random salt.
pub fn hash(password: &str, cost: PasswordCost) -> Result<String, IdentityError> {
    let salt = crate::random_bytes::<16>()?;
    let hash = argon2(cost)?
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| IdentityError::Internal(format!("argon2: {e}")))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `phc`. A malformed hash never matches.
pub fn verify(phc: &str, password: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// A hash of nothing anyone knows, verified when the account asked for does not exist so
/// that the answer takes as long as for one that does (no username probing by timing).
pub(crate) fn verify_dummy(password: &str) {
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0OyHb2yzZ7UrMqjJ5MMlmWpV8qXkgmx9qAXBcDeQp8o";
    let _ = verify(DUMMY, password);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse", PasswordCost::Light).unwrap_or_default();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&h, "correct horse"));
        assert!(!verify(&h, "Correct horse"));
        assert!(!verify("not a hash", "correct horse"));
    }

    #[test]
    fn recommended_cost_is_argon2id_with_the_library_defaults() {
        let h = hash("pw", PasswordCost::Recommended).unwrap_or_default();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
    }
}
