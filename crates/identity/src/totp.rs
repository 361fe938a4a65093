//! TOTP second factor (RFC 6238): SHA-1, 30-second steps, 6 digits, one step of clock skew
//! either way. Accepting each step only once is the directory's job (`use_totp_step`).

use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::IdentityError;

/// The issuer authenticator apps show next to the code.
pub const ISSUER: &str = "carerecord";

fn totp(secret_base32: &str, account: &str) -> Result<Totp, IdentityError> {
    let secret = Secret::try_from_base32(secret_base32)
        .map_err(|_| IdentityError::Internal("a stored TOTP secret is not base32".into()))?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret)
        .with_issuer(Some(ISSUER))
        .with_account_name(account.replace(':', "_"))
        .build()
        .map_err(|e| IdentityError::Internal(format!("TOTP: {e}")))
}

/// A new random 160-bit secret (RFC 4226 §4's recommended length), base32.
pub fn new_secret() -> Result<String, IdentityError> {
    let bytes = crate::random_bytes::<20>()?;
    Ok(Secret::from(bytes).to_base32())
}

/// The `otpauth://totp/…` URI an authenticator app enrols from.
pub fn otpauth_uri(secret_base32: &str, account: &str) -> Result<String, IdentityError> {
    totp(secret_base32, account)?
        .to_url()
        .map_err(|e| IdentityError::Internal(format!("TOTP URI: {e}")))
}

/// The step `code` is valid for at `unix_seconds` (±1 step), if any.
pub fn check(secret_base32: &str, code: &str, unix_seconds: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp(secret_base32, "").ok()?.check(code, unix_seconds)
}

/// The code for `unix_seconds` (for tests and tools that sign in as a demo user).
pub fn code_at(secret_base32: &str, unix_seconds: u64) -> Result<String, IdentityError> {
    Ok(totp(secret_base32, "")?.generate(unix_seconds).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 secret, "12345678901234567890", in base32.
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        // Appendix B gives 8 digits; 6-digit codes are their last six.
        for (t, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(code_at(RFC_SECRET, t).ok().as_deref(), Some(&eight[2..]));
        }
    }

    #[test]
    fn a_code_is_accepted_one_step_either_side_and_no_further() {
        let t = 1_000_000_020;
        let code = code_at(RFC_SECRET, t).unwrap_or_default();
        let step = t / 30;
        assert_eq!(check(RFC_SECRET, &code, t), Some(step));
        assert_eq!(check(RFC_SECRET, &code, t + 30), Some(step));
        assert_eq!(check(RFC_SECRET, &code, t - 30), Some(step));
        assert_eq!(check(RFC_SECRET, &code, t + 60), None);
        assert_eq!(check(RFC_SECRET, "12345", t), None);
        assert_eq!(check(RFC_SECRET, "abcdef", t), None);
    }

    #[test]
    fn new_secrets_enrol_as_otpauth_uris() {
        let s = new_secret().unwrap_or_default();
        assert_eq!(s.len(), 32);
        let uri = otpauth_uri(&s, "asha.patel").unwrap_or_default();
        assert!(
            uri.starts_with("otpauth://totp/carerecord:asha.patel?"),
            "{uri}"
        );
        assert!(uri.contains(&format!("secret={s}")), "{uri}");
    }
}
