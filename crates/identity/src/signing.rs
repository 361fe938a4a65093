//! The key carerecord signs its own JWTs with (SMART access tokens and OpenID Connect id
//! tokens): an EC P-256 key, ES256, published as a JWK Set at `/auth/jwks`. The binary keeps
//! it in the data directory (PKCS#8 PEM, readable by its owner only); a process given none
//! makes a key of its own at first use, which is right for tests and wrong for several
//! servers behind one name (their tokens would not verify at each other's JWKS).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::DecodePrivateKey as _;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::IdentityError;

/// A signing key and its public half as a JWK.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key never reaches a log.
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads an EC P-256 private key in PKCS#8 PEM.
    pub fn from_pem(pem: &str) -> Result<Self, IdentityError> {
        let secret = p256::SecretKey::from_pkcs8_pem(pem).map_err(|_| {
            IdentityError::Invalid("the signing key is not an EC P-256 key in PKCS#8 PEM".into())
        })?;
        let encoding = EncodingKey::from_ec_pem(pem.as_bytes())
            .map_err(|e| IdentityError::Invalid(format!("the signing key: {e}")))?;
        let point = secret.public_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err(IdentityError::Invalid(
                "the signing key has no public point".into(),
            ));
        };
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        // RFC 7638 thumbprint: the required members in lexicographic order, no spaces.
        let thumbprint = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint.as_bytes()));
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "use": "sig", "alg": "ES256", "kid": kid,
        });
        Ok(SigningKey { kid, encoding, jwk })
    }

    /// A new key, and its PKCS#8 PEM to keep.
    pub fn generate() -> Result<(Self, String), IdentityError> {
        let (private, _public) = crate::launch::generate_es256_key_pair()?;
        Ok((Self::from_pem(&private)?, private))
    }

    /// The key id (the JWK thumbprint).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK Set.
    pub fn jwks(&self) -> Value {
        json!({"keys": [self.jwk]})
    }

    /// Signs `claims` as a compact JWS (ES256, with `kid`).
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, IdentityError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| IdentityError::Internal(format!("signing a token: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn tokens_verify_with_the_published_jwk_and_not_with_another_key() {
        let Ok((key, pem)) = SigningKey::generate() else {
            panic!("no key");
        };
        let again = SigningKey::from_pem(&pem).map(|k| k.kid().to_owned());
        assert_eq!(again.ok().as_deref(), Some(key.kid()));
        let token = key
            .sign(&json!({"sub": "usr-1", "exp": 4_000_000_000_i64}))
            .unwrap_or_default();
        let verify = |jwks: Value| {
            let set: JwkSet = serde_json::from_value(jwks).ok()?;
            let dk = DecodingKey::from_jwk(set.keys.first()?).ok()?;
            let mut v = Validation::new(Algorithm::ES256);
            v.set_required_spec_claims(&["exp"]);
            jsonwebtoken::decode::<Value>(&token, &dk, &v).ok()
        };
        assert_eq!(
            verify(key.jwks()).map(|d| d.claims["sub"].clone()),
            Some(json!("usr-1"))
        );
        let Ok((other, _)) = SigningKey::generate() else {
            panic!("no key");
        };
        assert!(verify(other.jwks()).is_none());
        assert!(SigningKey::from_pem("not a key").is_err());
    }
}
