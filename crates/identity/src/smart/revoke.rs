//! Revocation (RFC 7009) and introspection (RFC 7662).

use super::*;

impl Identity {
    /// RFC 7009: revokes `token` if it was issued to the calling client (a refresh token
    /// takes its whole family with it). Unknown tokens are not an error. The answer says what
    /// was done, for the audit trail; it never holds the token.
    pub async fn revoke(
        &self,
        req: &TokenRequest,
        token_endpoint: &str,
        now: i64,
    ) -> Result<Revocation, OAuthError> {
        let (client_id, _) = self.calling_client(req, token_endpoint, now).await?;
        let token = req
            .field("token")?
            .ok_or_else(|| OAuthError::request("token is required"))?;
        let hash = bearer::digest(token);
        let revoked = if let Some(r) = self.dir.refresh_token(&hash).await? {
            if r.client_id == client_id {
                self.dir.revoke_family(&r.family).await?;
                Revoked::Family(r.family)
            } else {
                Revoked::NotOwned
            }
        } else if let Some(t) = self.dir.token(&hash).await? {
            if token_client(&t).as_deref() == Some(client_id.as_str()) {
                self.dir.revoke_token(&hash).await?;
                Revoked::AccessToken
            } else {
                Revoked::NotOwned
            }
        } else {
            Revoked::Unknown
        };
        Ok(Revocation { client_id, revoked })
    }

    /// RFC 7662: what an access or refresh token is, for an authenticated client. A client
    /// learns only about its own tokens, unless it is a `service` (carerecord's own tools).
    pub async fn introspect(
        &self,
        req: &TokenRequest,
        token_endpoint: &str,
        now: i64,
    ) -> Result<Introspection, OAuthError> {
        let (client_id, authenticated) = self.calling_client(req, token_endpoint, now).await?;
        if !authenticated {
            return Err(OAuthError::client());
        }
        let body = self.introspect_for(&client_id, req, now).await?;
        let active = body["active"] == json!(true);
        Ok(Introspection {
            client_id,
            active,
            body,
        })
    }

    /// [`Identity::introspect`]'s answer for the authenticated `client_id`.
    pub(super) async fn introspect_for(
        &self,
        client_id: &str,
        req: &TokenRequest,
        now: i64,
    ) -> Result<Value, OAuthError> {
        let any = self
            .dir
            .client(client_id)
            .await?
            .is_some_and(|c| c.role == carerecord_access::Role::Service.as_str());
        let token = req
            .field("token")?
            .ok_or_else(|| OAuthError::request("token is required"))?;
        let hash = bearer::digest(token);
        let inactive = json!({"active": false});
        if let Some(t) = self.dir.token(&hash).await? {
            let owner = token_client(&t);
            if !any && owner.as_deref() != Some(client_id) {
                return Ok(inactive);
            }
            let principal: Principal = serde_json::from_str(&t.principal).map_err(internal)?;
            let idle = !principal.role.is_system()
                && now.saturating_sub(t.last_used) > micros(self.settings.session_idle);
            if t.revoked || now >= t.expires_at || idle {
                return Ok(inactive);
            }
            let mut out = json!({
                "active": true,
                "token_type": "Bearer",
                "client_id": owner,
                "sub": t.subject,
                "exp": seconds(t.expires_at),
                "iat": seconds(t.created),
            });
            if let Some(s) = &principal.smart {
                out["scope"] = json!(s.scope);
                if let Some(p) = &s.patient {
                    out["patient"] = json!(p);
                }
            }
            return Ok(out);
        }
        if let Some(r) = self.dir.refresh_token(&hash).await? {
            if (!any && r.client_id != client_id) || r.used || r.revoked || now >= r.expires_at {
                return Ok(inactive);
            }
            let grant: Grant = serde_json::from_str(&r.grant).map_err(internal)?;
            let smart = grant.principal.smart.unwrap_or(SmartGrant {
                client_id: r.client_id.clone(),
                scope: String::new(),
                patient: None,
            });
            let mut out = json!({
                "active": true,
                "token_type": "refresh_token",
                "client_id": r.client_id,
                "sub": r.subject,
                "scope": smart.scope,
                "exp": seconds(r.expires_at),
                "iat": seconds(r.created),
            });
            if let Some(p) = smart.patient {
                out["patient"] = json!(p);
            }
            return Ok(out);
        }
        Ok(inactive)
    }
}

/// What a revocation request did (RFC 7009 answers the same whatever it was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// A refresh token of the caller: its whole family, named here by the family's id (the
    /// digest of the code that began it, never a token).
    Family(String),
    /// An access token of the caller.
    AccessToken,
    /// A token issued to another client: left alone.
    NotOwned,
    /// No such token.
    Unknown,
}

/// The authenticated caller of `/auth/revoke` and what was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub client_id: String,
    pub revoked: Revoked,
}

/// The authenticated caller of `/auth/introspect` and the RFC 7662 answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Introspection {
    pub client_id: String,
    /// Whether the token was active (and the caller may know of it).
    pub active: bool,
    pub body: Value,
}

/// The client an access token was issued to: the app of a SMART grant, or the system itself.
fn token_client(t: &TokenRecord) -> Option<String> {
    let principal: Principal = serde_json::from_str(&t.principal).ok()?;
    match (principal.smart, principal.id) {
        (Some(s), _) => Some(s.client_id),
        (None, PrincipalId::System(id)) => Some(id),
        (None, PrincipalId::User(_)) => None,
    }
}
