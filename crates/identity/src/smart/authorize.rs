//! Registering apps, checking an authorisation request, the person's approval (the code),
//! and the EHR launch contexts the portal opens.

use super::*;

impl Identity {
    /// Registers an app for the authorisation code flow (a public app when it has neither a
    /// secret nor a key).
    pub async fn register_smart_app(
        &self,
        new: NewSmartApp,
    ) -> Result<CreatedClient, IdentityError> {
        if new.name.trim().is_empty() || new.name.len() > 200 {
            return Err(IdentityError::Invalid(
                "an app needs a name of 1 to 200 characters".into(),
            ));
        }
        if new.redirect_uris.is_empty() {
            return Err(IdentityError::Invalid(
                "an app needs at least one redirect URI".into(),
            ));
        }
        if let Some(bad) = new.redirect_uris.iter().find(|u| !redirect_uri_allowed(u)) {
            return Err(IdentityError::Invalid(format!(
                "the redirect URI {bad} is not absolute https (or http on 127.0.0.1/localhost) \
                 without a fragment"
            )));
        }
        if let Some(url) = &new.launch_url
            && !redirect_uri_allowed(url)
        {
            return Err(IdentityError::Invalid(format!(
                "the launch URL {url} is not absolute https (or http on 127.0.0.1/localhost)"
            )));
        }
        if let Some(bad) = new.scopes.split_whitespace().find(|s| !scope_is_known(s)) {
            return Err(IdentityError::Invalid(format!(
                "the scope {bad} is not supported"
            )));
        }
        if new
            .scopes
            .split_whitespace()
            .any(|s| s.starts_with("system/"))
        {
            return Err(IdentityError::Invalid(
                "system/ scopes are for backend services: register those with `client add`".into(),
            ));
        }
        if new.client_id.is_empty()
            || new.client_id.len() > 128
            || !new
                .client_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
        {
            return Err(IdentityError::Invalid(
                "a client id is 1 to 128 of A-Z a-z 0-9 - . _ ~".into(),
            ));
        }
        if let Some(key) = &new.public_key {
            crate::oauth::check_public_key(key)?;
        }
        let secret = if new.secret {
            Some(bearer::new_secret()?)
        } else {
            None
        };
        let now = now_micros();
        let client = ClientRecord {
            client_id: new.client_id.clone(),
            organisation_id: String::new(),
            role: APP_ROLE.to_owned(),
            secret_hash: secret
                .as_deref()
                .map(|s| password::hash(s, self.settings.password_cost))
                .transpose()?,
            public_key_pem: new.public_key.clone(),
            created: now,
            disabled: false,
        };
        match self.dir.create_client(&client).await {
            Err(StoreError::AlreadyExists) => {
                return Err(IdentityError::AlreadyExists(format!(
                    "the client id {} is taken",
                    new.client_id
                )));
            }
            r => r?,
        }
        self.dir
            .create_smart_app(&SmartAppRecord {
                client_id: new.client_id.clone(),
                name: new.name.trim().to_owned(),
                redirect_uris: new.redirect_uris,
                scopes: new.scopes.split_whitespace().collect::<Vec<_>>().join(" "),
                confidential: new.secret || new.public_key.is_some(),
                launch_url: new.launch_url,
                created: now,
            })
            .await?;
        Ok(CreatedClient {
            client_id: new.client_id,
            secret,
        })
    }

    /// The apps registered with a launch URL, for the portal's "open in an app".
    pub async fn launchable_apps(&self) -> Result<Vec<SmartAppRecord>, IdentityError> {
        let mut apps = self.dir.smart_apps().await?;
        apps.retain(|a| a.launch_url.is_some());
        Ok(apps)
    }

    /// Checks an authorisation request (the query of `GET /auth/authorize`) for the FHIR
    /// API at `fhir_base`. Errors before the redirect URI is known are for a page; later ones
    /// go back to the app.
    pub async fn check_authorize(
        &self,
        params: &[(String, String)],
        fhir_base: &str,
        now: i64,
    ) -> Result<AuthorizeRequest, AuthorizeError> {
        let one = |name: &str| -> Result<Option<String>, String> {
            let mut values = params.iter().filter(|(k, _)| k == name);
            let first = values.next().map(|(_, v)| v.clone());
            if values.next().is_some() {
                return Err(format!("{name} is given more than once"));
            }
            Ok(first.filter(|v| !v.is_empty()))
        };
        let client_id = one("client_id").map_err(AuthorizeError::Page)?;
        let redirect_uri = one("redirect_uri").map_err(AuthorizeError::Page)?;
        let Some(client_id) = client_id else {
            return Err(AuthorizeError::Page(
                "The app did not say who it is (client_id is missing).".into(),
            ));
        };
        let app = self.dir.smart_app(&client_id).await?;
        let client = self.dir.client(&client_id).await?;
        let (Some(app), Some(client)) = (app, client) else {
            return Err(AuthorizeError::Page(
                "This app is not registered with carerecord.".into(),
            ));
        };
        if client.disabled {
            return Err(AuthorizeError::Page(
                "This app has been withdrawn from carerecord.".into(),
            ));
        }
        // RFC 6749 §3.1.2.3 and SMART: the redirect URI must be given and match a
        // registered one exactly.
        let Some(redirect_uri) = redirect_uri.filter(|r| app.redirect_uris.contains(r)) else {
            return Err(AuthorizeError::Page(
                "The app asked to return to an address that is not registered for it, so \
                 carerecord will not send you there."
                    .into(),
            ));
        };
        let state = one("state").ok().flatten();
        let fail = |error: &'static str, description: String| AuthorizeError::Redirect {
            redirect_uri: redirect_uri.clone(),
            error,
            description,
            state: state.clone(),
        };
        let get = |name: &str| one(name).map_err(|m| fail("invalid_request", m));
        match get("response_type")?.as_deref() {
            Some("code") => {}
            Some(_) => {
                return Err(fail(
                    "unsupported_response_type",
                    "only response_type=code is supported".into(),
                ));
            }
            None => return Err(fail("invalid_request", "response_type is required".into())),
        }
        let aud = get("aud")?;
        if !aud.as_deref().is_some_and(|a| same_base(a, fhir_base)) {
            return Err(fail(
                "invalid_request",
                format!("aud must be this server's FHIR base URL, {fhir_base}"),
            ));
        }
        let Some(challenge) = get("code_challenge")? else {
            return Err(fail(
                "invalid_request",
                "PKCE is required: send code_challenge and code_challenge_method=S256".into(),
            ));
        };
        match get("code_challenge_method")?.as_deref() {
            Some("S256") => {}
            _ => {
                return Err(fail(
                    "invalid_request",
                    "code_challenge_method must be S256 (plain is not accepted)".into(),
                ));
            }
        }
        // A S256 challenge is the base64url of 32 bytes.
        if challenge.len() != 43
            || !challenge
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(fail(
                "invalid_request",
                "code_challenge is not a base64url SHA-256".into(),
            ));
        }
        let requested = get("scope")?.unwrap_or_default();
        let granted =
            grant_scopes(&requested, &app.scopes).map_err(|m| fail("invalid_scope", m))?;
        let has = |s: &str| granted.iter().any(|g| g == s);
        if !granted.iter().any(|g| resource_scope(g).is_some()) {
            return Err(fail(
                "invalid_scope",
                "none of the resource scopes asked for is registered for this app".into(),
            ));
        }
        let launch = get("launch")?;
        let patient = match launch {
            Some(id) => {
                let found = self.dir.launch_context(&bearer::digest(&id)).await?;
                let Some(l) = found.filter(|l| l.client_id == app.client_id) else {
                    return Err(fail("invalid_request", "the launch is not known".into()));
                };
                if l.used || now >= l.expires_at {
                    return Err(fail(
                        "invalid_request",
                        "the launch has been used or has expired: launch again".into(),
                    ));
                }
                if !has("launch") {
                    return Err(fail(
                        "invalid_scope",
                        "an EHR launch needs the launch scope".into(),
                    ));
                }
                PatientContext::Launch(l)
            }
            None if has("launch") => {
                return Err(fail(
                    "invalid_request",
                    "the launch scope needs the launch parameter from an EHR launch".into(),
                ));
            }
            None if has("launch/patient") => PatientContext::Pick,
            None => PatientContext::None,
        };
        if patient == PatientContext::None && granted.iter().any(|g| g.starts_with("patient/")) {
            return Err(fail(
                "invalid_scope",
                "patient/ scopes need a patient in context: ask for launch/patient".into(),
            ));
        }
        let nonce = get("nonce")?;
        Ok(AuthorizeRequest {
            app,
            redirect_uri,
            state,
            scope: granted.join(" "),
            code_challenge: challenge,
            nonce,
            patient,
        })
    }

    /// The person (acting as `principal`, as in their portal session) authorises the request,
    /// with `patient` in context (the one they picked, already checked against the access
    /// policy, or the EHR launch's). Returns where to send the browser: the redirect URI with
    /// `code` and `state`.
    pub async fn approve(
        &self,
        req: &AuthorizeRequest,
        principal: &Principal,
        patient: Option<String>,
        now: i64,
    ) -> Result<String, AuthorizeError> {
        let PrincipalId::User(user_id) = &principal.id else {
            return Err(req.error("access_denied", "only people authorise apps"));
        };
        let patient = match &req.patient {
            PatientContext::None => None,
            PatientContext::Pick => match patient {
                Some(p) => Some(p),
                None => return Err(req.error("access_denied", "no patient was chosen")),
            },
            PatientContext::Launch(l) => {
                if &l.user_id != user_id {
                    return Err(
                        req.error("access_denied", "the launch was started by someone else")
                    );
                }
                if !self.dir.use_launch_context(&l.launch_hash).await? {
                    return Err(req.error("invalid_request", "the launch has been used"));
                }
                Some(l.patient_id.clone())
            }
        };
        let mut principal = principal.clone();
        principal.smart = Some(SmartGrant {
            client_id: req.app.client_id.clone(),
            scope: req.scope.clone(),
            patient,
        });
        let grant = Grant {
            principal,
            user_id: user_id.clone(),
            nonce: req.nonce.clone(),
        };
        let code = bearer::new_token()?;
        self.dir
            .create_auth_code(&AuthCodeRecord {
                code_hash: bearer::digest(&code),
                client_id: req.app.client_id.clone(),
                redirect_uri: req.redirect_uri.clone(),
                code_challenge: req.code_challenge.clone(),
                grant: serde_json::to_string(&grant).map_err(internal)?,
                expires_at: now.saturating_add(micros(CODE_LIFETIME)),
                used: false,
            })
            .await?;
        tracing::info!(client_id = %req.app.client_id, user_id = %user_id, "authorisation code issued");
        let mut params = vec![("code", code.as_str())];
        if let Some(s) = &req.state {
            params.push(("state", s));
        }
        Ok(with_query(&req.redirect_uri, &params))
    }

    /// Opens an EHR launch: `user_id` opens `patient_id` in the app `client_id`. Returns the
    /// opaque launch id (given to the app once; stored as a digest).
    pub async fn open_launch(
        &self,
        client_id: &str,
        user_id: &str,
        patient_id: &str,
        now: i64,
    ) -> Result<String, IdentityError> {
        let launch = bearer::new_token()?;
        self.dir
            .create_launch_context(&LaunchContextRecord {
                launch_hash: bearer::digest(&launch),
                client_id: client_id.to_owned(),
                user_id: user_id.to_owned(),
                patient_id: patient_id.to_owned(),
                expires_at: now.saturating_add(micros(LAUNCH_LIFETIME)),
                used: false,
            })
            .await?;
        Ok(launch)
    }
}

/// A redirect URI an app may register: absolute https, or http on the loopback interface
/// (RFC 8252 §7.3), without a fragment.
pub(crate) fn redirect_uri_allowed(uri: &str) -> bool {
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| {
            uri.strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
        });
    let https = uri
        .strip_prefix("https://")
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    (https || loopback) && !uri.contains('#') && !uri.contains(char::is_whitespace)
}
