//! The token endpoint's SMART side: authenticating the calling client, redeeming a code,
//! rotating refresh tokens, and issuing the access, id and refresh tokens.

use super::*;

impl Identity {
    /// The client making a request at the token, revocation or introspection endpoint:
    /// authenticated (a secret or `private_key_jwt`), or a public app naming itself.
    /// Returns the client id and whether it authenticated.
    pub(super) async fn calling_client(
        &self,
        req: &TokenRequest,
        token_endpoint: &str,
        now: i64,
    ) -> Result<(String, bool), OAuthError> {
        let form_id = req.field("client_id")?;
        let form_secret = req.field("client_secret")?;
        let assertion = req.field("client_assertion")?;
        let assertion_type = req.field("client_assertion_type")?;
        let methods = [
            req.basic.is_some(),
            form_secret.is_some(),
            assertion.is_some() || assertion_type.is_some(),
        ];
        match methods.iter().filter(|m| **m).count() {
            0 => {
                let id = form_id.ok_or_else(|| OAuthError::request("client_id is required"))?;
                let app = self.dir.smart_app(id).await?;
                let enabled = self.dir.client(id).await?.is_some_and(|c| !c.disabled);
                match app {
                    // A public app identifies itself; PKCE (or the token itself) is its proof.
                    Some(a) if !a.confidential && enabled => Ok((id.to_owned(), false)),
                    _ => Err(OAuthError::client()),
                }
            }
            1 => {
                let id = if let Some((id, secret)) = &req.basic {
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
                    if assertion_type != Some(crate::oauth::JWT_BEARER) {
                        return Err(OAuthError::request(format!(
                            "client_assertion_type must be {}",
                            crate::oauth::JWT_BEARER
                        )));
                    }
                    let assertion = assertion
                        .ok_or_else(|| OAuthError::request("client_assertion is required"))?;
                    self.check_assertion(assertion, form_id, token_endpoint, now)
                        .await?
                };
                Ok((id, true))
            }
            _ => Err(OAuthError::request(
                "use exactly one client authentication method",
            )),
        }
    }

    /// The app at the token endpoint: a confidential app must authenticate.
    pub(super) async fn calling_app(
        &self,
        req: &TokenRequest,
        token_endpoint: &str,
        now: i64,
    ) -> Result<SmartAppRecord, OAuthError> {
        let (client_id, authenticated) = self.calling_client(req, token_endpoint, now).await?;
        let Some(app) = self.dir.smart_app(&client_id).await? else {
            return Err(OAuthError::new(
                "unauthorized_client",
                "this client is not registered for the authorisation code flow",
            ));
        };
        if app.confidential && !authenticated {
            return Err(OAuthError::client());
        }
        Ok(app)
    }

    /// `grant_type=authorization_code` and `grant_type=refresh_token`.
    pub(crate) async fn smart_token(
        &self,
        grant_type: &str,
        req: &TokenRequest,
        token_endpoint: &str,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let app = self.calling_app(req, token_endpoint, now).await?;
        let fhir_base = format!(
            "{}/fhir",
            token_endpoint
                .trim_end_matches('/')
                .trim_end_matches("/auth/token")
        );
        if grant_type == "authorization_code" {
            self.redeem_code(&app, req, &fhir_base, now).await
        } else {
            self.refresh(&app, req, &fhir_base, now).await
        }
    }

    pub(super) async fn redeem_code(
        &self,
        app: &SmartAppRecord,
        req: &TokenRequest,
        fhir_base: &str,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let code = req
            .field("code")?
            .ok_or_else(|| OAuthError::request("code is required"))?;
        let verifier = req
            .field("code_verifier")?
            .ok_or_else(|| OAuthError::request("code_verifier is required (PKCE)"))?;
        let redirect_uri = req.field("redirect_uri")?;
        let invalid = |d: &str| OAuthError::new("invalid_grant", d);
        let code_hash = bearer::digest(code);
        let Some(c) = self.dir.use_auth_code(&code_hash, now).await? else {
            return Err(invalid("the code is not valid"));
        };
        if c.used {
            // RFC 6749 §4.1.2: a code used twice revokes what was issued for it.
            self.dir.revoke_family(&code_hash).await?;
            tracing::warn!(client_id = %c.client_id, "authorisation code reused: its tokens are revoked");
            return Err(invalid("the code has been used already"));
        }
        if now >= c.expires_at {
            return Err(invalid("the code has expired"));
        }
        if c.client_id != app.client_id {
            return Err(invalid("the code was issued to another client"));
        }
        if redirect_uri != Some(c.redirect_uri.as_str()) {
            return Err(invalid(
                "redirect_uri must be the one the code was issued for",
            ));
        }
        if !pkce_verifies(verifier, &c.code_challenge) {
            return Err(invalid(
                "the code_verifier does not match the code_challenge",
            ));
        }
        let grant: Grant = serde_json::from_str(&c.grant).map_err(internal)?;
        let family_expiry = if grant_has(&grant, "offline_access") {
            now.saturating_add(micros(OFFLINE_LIFETIME))
        } else {
            now.saturating_add(micros(self.settings.session_lifetime))
        };
        self.issue_smart(app, &grant, &code_hash, family_expiry, fhir_base, now)
            .await
    }

    pub(super) async fn refresh(
        &self,
        app: &SmartAppRecord,
        req: &TokenRequest,
        fhir_base: &str,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let token = req
            .field("refresh_token")?
            .ok_or_else(|| OAuthError::request("refresh_token is required"))?;
        let invalid = |d: &str| OAuthError::new("invalid_grant", d);
        let hash = bearer::digest(token);
        let Some(r) = self.dir.refresh_token(&hash).await? else {
            return Err(invalid("the refresh token is not valid"));
        };
        if r.client_id != app.client_id {
            return Err(invalid("the refresh token was issued to another client"));
        }
        if r.revoked {
            return Err(invalid("the refresh token has been revoked"));
        }
        if r.used || !self.dir.use_refresh_token(&hash).await? {
            // A spent token again: it has been copied. Whoever holds the family's newest
            // token may be the thief, so the whole family ends (OAuth 2.0 Security BCP §4.14).
            self.dir.revoke_family(&r.family).await?;
            tracing::warn!(client_id = %r.client_id, "refresh token reused: its family is revoked");
            return Err(invalid("the refresh token has been used already"));
        }
        if now >= r.expires_at {
            return Err(invalid("the refresh token has expired"));
        }
        let mut grant: Grant = serde_json::from_str(&r.grant).map_err(internal)?;
        // The person may have changed since: disabled, role withdrawn, training renewed.
        let user = self.dir.user_by_id(&grant.user_id).await?;
        let Some(user) = user.filter(|u| !u.disabled) else {
            self.dir.revoke_family(&r.family).await?;
            return Err(invalid("the user can no longer sign in"));
        };
        let role = grant.principal.role.as_str();
        let holds = self
            .dir
            .grants(&user.id)
            .await?
            .iter()
            .any(|g| g.role == role && g.organisation_id == grant.principal.organisation_id);
        if !holds {
            self.dir.revoke_family(&r.family).await?;
            return Err(invalid(
                "the user no longer holds the role the app was authorised in",
            ));
        }
        grant.principal.training_valid_until = Some(user.training_valid_until.unwrap_or(0));
        // RFC 6749 §6: a narrower scope may be asked for, never a wider one.
        if let Some(asked) = req.field("scope")? {
            let Some(smart) = grant.principal.smart.as_mut() else {
                return Err(OAuthError::from(internal("a refresh grant without scopes")));
            };
            let had: Vec<&str> = smart.scope.split_whitespace().collect();
            if let Some(extra) = asked.split_whitespace().find(|s| !had.contains(s)) {
                return Err(OAuthError::new(
                    "invalid_scope",
                    format!("{extra} was not granted originally"),
                ));
            }
            smart.scope = asked.split_whitespace().collect::<Vec<_>>().join(" ");
        }
        self.issue_smart(app, &grant, &r.family, r.expires_at, fhir_base, now)
            .await
    }

    /// Issues the access token (and id token and next refresh token, as the scopes say) of
    /// a grant in `family`.
    pub(super) async fn issue_smart(
        &self,
        app: &SmartAppRecord,
        grant: &Grant,
        family: &str,
        family_expiry: i64,
        fhir_base: &str,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let smart = grant
            .principal
            .smart
            .clone()
            .ok_or_else(|| OAuthError::from(internal("a grant without scopes")))?;
        let key = self.signing_key()?;
        let lifetime = micros(ACCESS_TOKEN_LIFETIME).min(family_expiry.saturating_sub(now));
        let expires_at = now.saturating_add(lifetime);
        let user_url = fhir_user(fhir_base, &grant.user_id);
        let access_token = key.sign(&AccessClaims {
            iss: fhir_base,
            sub: &grant.user_id,
            aud: fhir_base,
            exp: seconds(expires_at),
            iat: seconds(now),
            jti: bearer::new_token()?,
            client_id: &app.client_id,
            scope: &smart.scope,
            patient: smart.patient.as_deref(),
            fhir_user: user_url.clone(),
        })?;
        let token_hash = bearer::digest(&access_token);
        self.dir
            .create_token(&TokenRecord {
                token_hash: token_hash.clone(),
                subject: grant.user_id.clone(),
                principal: serde_json::to_string(&grant.principal).map_err(internal)?,
                created: now,
                expires_at,
                last_used: now,
                revoked: false,
            })
            .await?;
        self.dir.add_family_token(&token_hash, family).await?;

        let has = |s: &str| smart.scope.split_whitespace().any(|g| g == s);
        let id_token = if has("openid") && (has("fhirUser") || has("profile")) {
            Some(key.sign(&IdClaims {
                iss: fhir_base,
                sub: &grant.user_id,
                aud: &app.client_id,
                exp: seconds(expires_at),
                iat: seconds(now),
                fhir_user: user_url,
                nonce: grant.nonce.as_deref(),
                name: has("profile").then_some(grant.principal.name.as_str()),
            })?)
        } else {
            None
        };
        let refresh_token = if has("offline_access") || has("online_access") {
            let t = bearer::new_token()?;
            self.dir
                .create_refresh_token(&RefreshTokenRecord {
                    token_hash: bearer::digest(&t),
                    family: family.to_owned(),
                    client_id: app.client_id.clone(),
                    subject: grant.user_id.clone(),
                    grant: serde_json::to_string(grant).map_err(internal)?,
                    created: now,
                    expires_at: family_expiry,
                    used: false,
                    revoked: false,
                })
                .await?;
            Some(t)
        } else {
            None
        };
        tracing::info!(client_id = %app.client_id, user_id = %grant.user_id, "SMART access token issued");
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: seconds(lifetime),
            scope: Some(smart.scope.clone()),
            principal: grant.principal.clone(),
            smart: Some(SmartTokenFields {
                patient: smart.patient.clone(),
                id_token,
                refresh_token,
            }),
        })
    }
}
