//! The OAuth2 token endpoint's logic: the client credentials grant (RFC 6749 §4.4) with
//! `client_secret_basic`, `client_secret_post`, or `private_key_jwt` (RFC 7523, as SMART
//! Backend Services uses it: RS384 or ES384, `iss` = `sub` = client id, `aud` = the token
//! endpoint, `exp` at most five minutes ahead, `jti` never reused). Errors are RFC 6749 §5.2's.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use carerecord_access::scope::{ContextKind, ScopeSet};
use carerecord_access::{Principal, PrincipalId, Role, SmartGrant};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::{Identity, IdentityError, MICROS_PER_SECOND, password};

/// The `client_assertion_type` of a JWT client assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The client authentication methods the endpoint accepts, as SMART configuration names them.
pub const AUTH_METHODS: [&str; 3] = [
    "private_key_jwt",
    "client_secret_basic",
    "client_secret_post",
];

/// Signing algorithms accepted for client assertions.
pub const ASSERTION_ALGORITHMS: [&str; 2] = ["RS384", "ES384"];

/// Longest an assertion may live (SMART Backend Services: no more than five minutes).
const MAX_ASSERTION_LIFETIME_SECONDS: i64 = 300;
/// Clock difference tolerated between client and server.
const LEEWAY_SECONDS: u64 = 30;

/// A token request: the form fields and the `Authorization: Basic` credentials, if any.
#[derive(Clone, Default)]
pub struct TokenRequest {
    pub form: Vec<(String, String)>,
    pub basic: Option<(String, String)>,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets and assertions never reach a log.
        f.debug_struct("TokenRequest").finish_non_exhaustive()
    }
}

impl TokenRequest {
    pub(crate) fn field(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        let mut values = self.form.iter().filter(|(k, _)| k == name);
        let first = values.next().map(|(_, v)| v.as_str());
        if values.next().is_some() {
            // RFC 6749 §3.2: parameters must not be included more than once.
            return Err(OAuthError::request(format!(
                "{name} is given more than once"
            )));
        }
        Ok(first)
    }
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Who the token acts as, for the audit entry of its issue; not part of the response.
    #[serde(skip)]
    pub principal: Principal,
    /// `patient`, `id_token` and `refresh_token` of a SMART App Launch grant.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub smart: Option<crate::smart::SmartTokenFields>,
}

/// An error response (RFC 6749 §5.2).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error}: {description}")]
pub struct OAuthError {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, or `server_error`.
    pub error: &'static str,
    pub description: String,
    /// The client tried `Authorization: Basic` (an `invalid_client` answer then carries
    /// `WWW-Authenticate: Basic`).
    pub basic_used: bool,
}

impl OAuthError {
    pub(crate) fn new(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            error,
            description: description.into(),
            basic_used: false,
        }
    }

    pub(crate) fn request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    pub(crate) fn client() -> Self {
        // One message for an unknown client, a wrong secret and a bad assertion alike.
        Self::new("invalid_client", "client authentication failed")
    }

    /// The HTTP status: 401 for `invalid_client`, 500 for `server_error`, else 400.
    pub fn status(&self) -> u16 {
        match self.error {
            "invalid_client" => 401,
            "server_error" => 500,
            _ => 400,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": self.error, "error_description": self.description})
    }
}

impl From<IdentityError> for OAuthError {
    fn from(e: IdentityError) -> Self {
        tracing::error!(error = %e, "token endpoint failed");
        OAuthError::new("server_error", "the token could not be issued")
    }
}

impl From<carerecord_store::StoreError> for OAuthError {
    fn from(e: carerecord_store::StoreError) -> Self {
        IdentityError::Store(e).into()
    }
}

/// Reads an `Authorization: Basic …` value: base64 of the form-urlencoded client id and
/// secret joined by `:` (RFC 6749 §2.3.1).
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

#[derive(Debug, Deserialize)]
struct AssertionClaims {
    iss: String,
    #[serde(default)]
    jti: Option<String>,
    exp: i64,
}

#[derive(Debug, Deserialize)]
struct UnverifiedClaims {
    #[serde(default)]
    iss: Option<String>,
}

/// Checks that a stored public key (PEM, JWK or JWK Set) can verify some accepted algorithm.
pub fn check_public_key(key: &str) -> Result<(), IdentityError> {
    // ES256 (P-256) and RS256 for signed context launches (`launch`).
    let ok = [Algorithm::RS384, Algorithm::ES384, Algorithm::ES256]
        .into_iter()
        .any(|alg| decoding_key(key, alg, None).is_some());
    if ok {
        Ok(())
    } else {
        Err(IdentityError::Invalid(
            "the public key is not an RSA, EC P-384 or EC P-256 key in PEM or JWK form".into(),
        ))
    }
}

pub(crate) fn decoding_key(stored: &str, alg: Algorithm, kid: Option<&str>) -> Option<DecodingKey> {
    let stored = stored.trim();
    if stored.starts_with('{') {
        let keys: Vec<Jwk> = match serde_json::from_str::<JwkSet>(stored) {
            Ok(set) => set.keys,
            Err(_) => vec![serde_json::from_str::<Jwk>(stored).ok()?],
        };
        return keys
            .iter()
            .filter(|k| kid.is_none() || k.common.key_id.as_deref() == kid)
            .find_map(|k| {
                let key = DecodingKey::from_jwk(k).ok()?;
                let family_matches = match alg {
                    Algorithm::ES384 => matches!(
                        &k.algorithm,
                        jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(p)
                            if p.curve == jsonwebtoken::jwk::EllipticCurve::P384
                    ),
                    Algorithm::ES256 => matches!(
                        &k.algorithm,
                        jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(p)
                            if p.curve == jsonwebtoken::jwk::EllipticCurve::P256
                    ),
                    _ => matches!(&k.algorithm, jsonwebtoken::jwk::AlgorithmParameters::RSA(_)),
                };
                family_matches.then_some(key)
            });
    }
    match alg {
        Algorithm::RS384 | Algorithm::RS256 => DecodingKey::from_rsa_pem(stored.as_bytes()).ok(),
        Algorithm::ES384 | Algorithm::ES256 => {
            // `from_ec_pem` accepts any curve; a P-256 key must not pass for ES384.
            if stored.contains("BEGIN PUBLIC KEY") || stored.contains("BEGIN EC PUBLIC KEY") {
                let key = DecodingKey::from_ec_pem(stored.as_bytes()).ok()?;
                Some(key)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The scopes a client credentials grant (SMART Backend Services) carries: what was asked
/// (`requested`) within what the client is registered for (`registered`; any `system/` scope
/// when it has none registered), keeping only `system/` scopes — there is no user or patient
/// in this grant. Without a `scope` parameter the client gets its registered scopes; a client
/// with neither gets a token without a grant (`None`), narrowed by the access policy alone, as
/// before scopes existed. `invalid_scope` when the request does not parse or nothing of it is
/// permitted.
pub fn backend_scopes(
    requested: Option<&str>,
    registered: Option<&str>,
) -> Result<Option<ScopeSet>, OAuthError> {
    let invalid = |d: String| OAuthError::new("invalid_scope", d);
    let every_system = ScopeSet::parse("system/*.cruds").map_err(|e| invalid(e.to_string()))?;
    let registered = registered
        .map(|r| {
            ScopeSet::parse(r).map_err(|e| {
                tracing::error!(error = %e, "a client's registered scopes do not parse");
                OAuthError::new("server_error", "the client's registration is not usable")
            })
        })
        .transpose()?;
    let requested = match (
        requested.map(str::trim).filter(|s| !s.is_empty()),
        &registered,
    ) {
        (Some(r), _) => ScopeSet::parse(r).map_err(|e| invalid(e.to_string()))?,
        (None, Some(r)) => r.clone(),
        (None, None) => return Ok(None),
    };
    let registered = registered.unwrap_or_else(|| every_system.clone());
    let granted = requested.narrow(&registered).narrow(&every_system);
    if granted.is_empty() || !granted.has_context(ContextKind::System) {
        return Err(invalid(format!(
            "none of the requested scopes is available to this client: it may be granted {}",
            registered.narrow(&every_system)
        )));
    }
    Ok(Some(granted))
}

impl Identity {
    /// Handles a token request at `now` for the endpoint at `token_endpoint` (the `aud` a
    /// client assertion must name).
    pub async fn token(
        &self,
        req: &TokenRequest,
        token_endpoint: &str,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let basic_used = req.basic.is_some();
        self.token_inner(req, token_endpoint, now)
            .await
            .map_err(|mut e| {
                e.basic_used = basic_used;
                e
            })
    }

    async fn token_inner(
        &self,
        req: &TokenRequest,
        token_endpoint: &str,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        match req.field("grant_type")? {
            None => return Err(OAuthError::request("grant_type is required")),
            Some("client_credentials") => {}
            Some(g @ ("authorization_code" | "refresh_token")) => {
                return self.smart_token(g, req, token_endpoint, now).await;
            }
            Some(other) => {
                return Err(OAuthError::new(
                    "unsupported_grant_type",
                    format!(
                        "grant type {other} is not supported; use client_credentials, \
                         authorization_code or refresh_token"
                    ),
                ));
            }
        }
        let form_id = req.field("client_id")?;
        let form_secret = req.field("client_secret")?;
        let assertion_type = req.field("client_assertion_type")?;
        let assertion = req.field("client_assertion")?;
        let methods = [
            req.basic.is_some(),
            form_secret.is_some(),
            assertion.is_some() || assertion_type.is_some(),
        ];
        // RFC 6749 §2.3: a client must not use more than one authentication method.
        match methods.iter().filter(|m| **m).count() {
            0 => return Err(OAuthError::client()),
            1 => {}
            _ => {
                return Err(OAuthError::request(
                    "use exactly one client authentication method",
                ));
            }
        }

        let client_id = if let Some((id, secret)) = &req.basic {
            if form_id.is_some_and(|f| f != id) {
                return Err(OAuthError::request(
                    "client_id does not match the credentials",
                ));
            }
            self.check_secret(id, secret).await?;
            id.clone()
        } else if let Some(secret) = form_secret {
            let id = form_id.ok_or_else(|| OAuthError::request("client_id is required"))?;
            self.check_secret(id, secret).await?;
            id.to_owned()
        } else {
            if assertion_type != Some(JWT_BEARER) {
                return Err(OAuthError::request(format!(
                    "client_assertion_type must be {JWT_BEARER}"
                )));
            }
            let assertion =
                assertion.ok_or_else(|| OAuthError::request("client_assertion is required"))?;
            self.check_assertion(assertion, form_id, token_endpoint, now)
                .await?
        };

        let Some(client) = self.dir.client(&client_id).await? else {
            return Err(OAuthError::client());
        };
        let Ok(role) = client.role.parse::<Role>() else {
            return Err(OAuthError::new(
                "unauthorized_client",
                "the client has no usable role",
            ));
        };
        let registered = self.dir.client_scope(&client.client_id).await?;
        let granted = backend_scopes(req.field("scope")?, registered.as_deref())?;
        let principal = Principal {
            id: PrincipalId::System(client.client_id.clone()),
            name: client.client_id.clone(),
            role,
            organisation_ods: self.ods_code(&client.organisation_id).await?,
            organisation_id: client.organisation_id.clone(),
            training_valid_until: None,
            smart: granted.as_ref().map(|s| SmartGrant {
                client_id: client.client_id.clone(),
                scope: s.to_string(),
                patient: None,
            }),
        };
        let session = self
            .issue(
                &client.client_id,
                &principal,
                self.settings.system_token_lifetime,
                now,
            )
            .await?;
        tracing::info!(client_id = %client.client_id, role = %role, "token issued by client credentials");
        Ok(TokenResponse {
            access_token: session.access_token,
            token_type: "bearer",
            expires_in: (session.expires_at - now) / MICROS_PER_SECOND,
            scope: granted.map(|s| s.to_string()),
            principal,
            smart: None,
        })
    }

    pub(crate) async fn check_secret(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<(), OAuthError> {
        let client = self.dir.client(client_id).await?;
        match client.filter(|c| !c.disabled).and_then(|c| c.secret_hash) {
            Some(hash) if password::verify(&hash, secret) => Ok(()),
            Some(_) => Err(OAuthError::client()),
            None => {
                password::verify_dummy(secret);
                Err(OAuthError::client())
            }
        }
    }

    /// Verifies a `private_key_jwt` assertion; the client id it authenticates.
    pub(crate) async fn check_assertion(
        &self,
        assertion: &str,
        form_id: Option<&str>,
        token_endpoint: &str,
        now: i64,
    ) -> Result<String, OAuthError> {
        let header = jsonwebtoken::decode_header(assertion).map_err(|_| OAuthError::client())?;
        if !matches!(header.alg, Algorithm::RS384 | Algorithm::ES384) {
            return Err(OAuthError::new(
                "invalid_client",
                "client assertions must be signed with RS384 or ES384",
            ));
        }
        // The issuer names the key to check the signature with; nothing else is trusted
        // before the signature is.
        let unverified: UnverifiedClaims = assertion
            .split('.')
            .nth(1)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(OAuthError::client)?;
        let client_id = unverified.iss.ok_or_else(OAuthError::client)?;
        if form_id.is_some_and(|f| f != client_id) {
            return Err(OAuthError::client());
        }
        let Some(client) = self.dir.client(&client_id).await?.filter(|c| !c.disabled) else {
            return Err(OAuthError::client());
        };
        let key = match self
            .client_key(&client, header.alg, header.kid.as_deref())
            .await
        {
            Ok(key) => key,
            Err(crate::jwks::JwksError::UnknownKey) => return Err(OAuthError::client()),
            Err(crate::jwks::JwksError::Unavailable(why)) => {
                tracing::warn!(client_id = %client_id, reason = %why, "client keys unavailable");
                return Err(OAuthError::new(
                    "invalid_client",
                    "the client's keys could not be fetched from its registered JWKS URL",
                ));
            }
        };
        let mut v = Validation::new(header.alg);
        v.set_audience(&[token_endpoint]);
        v.set_issuer(&[client_id.as_str()]);
        v.sub = Some(client_id.clone());
        v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        v.leeway = LEEWAY_SECONDS;
        let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &v)
            .map_err(|e| {
                tracing::debug!(client_id = %client_id, error = %e, "client assertion refused");
                OAuthError::client()
            })?
            .claims;
        let now_s = now / MICROS_PER_SECOND;
        let leeway = i64::try_from(LEEWAY_SECONDS).unwrap_or(0);
        if claims.exp <= now_s - leeway {
            return Err(OAuthError::client());
        }
        if claims.exp > now_s + MAX_ASSERTION_LIFETIME_SECONDS + leeway {
            return Err(OAuthError::new(
                "invalid_client",
                "the client assertion must expire within five minutes",
            ));
        }
        let jti = claims
            .jti
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or_else(|| OAuthError::new("invalid_client", "the client assertion needs a jti"))?;
        let keep_until = (claims.exp + leeway) * MICROS_PER_SECOND;
        if !self
            .dir
            .use_assertion_id(&claims.iss, &jti, keep_until, now)
            .await?
        {
            return Err(OAuthError::new(
                "invalid_client",
                "this client assertion has been used already",
            ));
        }
        Ok(client_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_base64_of_form_encoded_parts() {
        let h = format!("Basic {}", STANDARD.encode("my%3Aclient:s%2Bcret+x"));
        assert_eq!(
            parse_basic(&h),
            Some(("my:client".to_owned(), "s+cret x".to_owned()))
        );
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }

    #[test]
    fn backend_scopes_are_the_request_within_the_registration() {
        let granted = |q: Option<&str>, r: Option<&str>| {
            backend_scopes(q, r).map(|s| s.map(|s| s.to_string()))
        };
        let reg = Some("system/Patient.rs system/Observation.rs");
        assert_eq!(
            granted(Some("system/*.rs"), reg).unwrap().as_deref(),
            Some("system/Patient.rs system/Observation.rs")
        );
        assert_eq!(
            granted(Some("system/Observation.read"), reg)
                .unwrap()
                .as_deref(),
            Some("system/Observation.read")
        );
        // No scope asked: the registered ones; nothing registered either: no grant at all.
        assert_eq!(granted(None, reg).unwrap().as_deref(), reg);
        assert_eq!(granted(None, None).unwrap(), None);
        // Nothing registered: any system/ scope, as asked.
        assert_eq!(
            granted(Some("system/*.cruds"), None).unwrap().as_deref(),
            Some("system/*.cruds")
        );
        // Other contexts and launch scopes mean nothing here and are dropped.
        assert_eq!(
            granted(Some("openid launch system/Patient.r user/*.rs"), reg)
                .unwrap()
                .as_deref(),
            Some("system/Patient.r")
        );
        for (q, r) in [
            (Some("system/Condition.rs"), reg),
            (Some("user/*.rs"), None),
            (Some("system/Observation.c"), reg),
            (Some("system/Observation.sr"), None),
            (Some("admin"), None),
        ] {
            let e = backend_scopes(q, r).unwrap_err();
            assert_eq!((e.error, e.status()), ("invalid_scope", 400), "{q:?}");
        }
    }

    #[test]
    fn errors_follow_rfc_6749() {
        let e = OAuthError::client();
        assert_eq!(e.status(), 401);
        assert_eq!(e.body()["error"], "invalid_client");
        assert_eq!(OAuthError::request("x").status(), 400);
    }
}
