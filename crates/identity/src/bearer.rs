//! Opaque bearer tokens: 256 random bits, given out once and stored only as a SHA-256 digest.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::IdentityError;

/// A new token (43 URL-safe characters).
pub fn new_token() -> Result<String, IdentityError> {
    Ok(URL_SAFE_NO_PAD.encode(crate::random_bytes::<32>()?))
}

/// The hex SHA-256 the directory keys a token by. A fast hash is right here: the token has
/// 256 bits of entropy, so there is nothing to slow down guessing of.
pub fn digest(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random secret for a client (`client_secret_basic`/`_post`).
pub fn new_secret() -> Result<String, IdentityError> {
    new_token()
}

/// A new one-time password for a person: 16 letters and digits without look-alikes.
pub fn new_password() -> Result<String, IdentityError> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes = crate::random_bytes::<16>()?;
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_digested_as_hex() {
        let a = new_token().unwrap_or_default();
        let b = new_token().unwrap_or_default();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(new_password().unwrap_or_default().len(), 16);
    }
}
