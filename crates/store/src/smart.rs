//! Storage for SMART App Launch (migration `0009_smart.sql`): the apps people authorise,
//! authorisation codes and refresh tokens (only as SHA-256 digests), the access tokens issued
//! in each grant's family, and the launch contexts of an EHR launch from the portal.
//!
//! A supertrait of [`Directory`](crate::Directory): both backends implement it over the same
//! database, and the identity crate reaches it through `ResourceStore::directory()`. The
//! statements and their decoding are written once, here, over a connection ([`SqlExec`]), as
//! [`crate::break_glass`] is; a backend's implementation only picks the connection.
//! Every instant is microseconds since the Unix epoch.

use async_trait::async_trait;

use crate::cells::{Cell, Cols, Kind};
use crate::engine::SqlExec;
use crate::error::StoreError;
use crate::sql::{Arg, Statement};

/// An app registered for the authorisation code flow. Its credentials, when it is
/// confidential, are those of its `oauth_clients` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmartAppRecord {
    pub client_id: String,
    /// Shown to people when they are asked to authorise it.
    pub name: String,
    /// Exact redirect URIs; an authorisation request must name one of them.
    pub redirect_uris: Vec<String>,
    /// The most the app may be granted (space-separated scopes).
    pub scopes: String,
    /// Confidential apps authenticate at the token endpoint; public ones rely on PKCE alone.
    pub confidential: bool,
    /// Where the portal sends a person for an EHR launch (`?iss=…&launch=…`).
    pub launch_url: Option<String>,
    pub created: i64,
}

/// An authorisation code issued and not yet redeemed (or redeemed: `used`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCodeRecord {
    /// Hex SHA-256 of the code.
    pub code_hash: String,
    pub client_id: String,
    pub redirect_uri: String,
    /// The PKCE S256 challenge the code's verifier must match.
    pub code_challenge: String,
    /// What was granted, as JSON (the identity crate's own shape).
    pub grant: String,
    pub expires_at: i64,
    /// Whether the code had been redeemed before (as returned by [`SmartDirectory::use_auth_code`]).
    pub used: bool,
}

/// A refresh token. Each use spends it and issues the next one in the same `family`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// One per authorisation: every token rotated from the same code shares it.
    pub family: String,
    pub client_id: String,
    /// The user the grant was made by.
    pub subject: String,
    pub grant: String,
    pub created: i64,
    /// The family's absolute expiry (rotation does not extend it).
    pub expires_at: i64,
    pub used: bool,
    pub revoked: bool,
}

/// An EHR launch context: the portal's user opened `patient_id` in `client_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchContextRecord {
    /// Hex SHA-256 of the opaque launch id.
    pub launch_hash: String,
    pub client_id: String,
    pub user_id: String,
    pub patient_id: String,
    pub expires_at: i64,
    pub used: bool,
}

/// Everything registered in one go for a system or an app: written in one transaction, so a
/// refused registration leaves nothing behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRegistration {
    pub client: crate::ClientRecord,
    /// The SMART scopes it may be granted by client credentials.
    pub scope: Option<String>,
    /// The care homes it may launch users into, and the roles it may assert there.
    pub launch: Vec<crate::LaunchRegistration>,
    /// Where its public keys are published, instead of (or besides) a registered key.
    pub jwks_uri: Option<String>,
    /// Set for a SMART app (authorisation code flow).
    pub app: Option<SmartAppRecord>,
}

/// A registered client as the administrators' list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredClient {
    pub client: crate::ClientRecord,
    pub scope: Option<String>,
    pub launch: Vec<crate::LaunchRegistration>,
    pub jwks_uri: Option<String>,
    pub app: Option<SmartAppRecord>,
}

/// Storage for SMART App Launch. Implemented by both backends.
#[async_trait]
pub trait SmartDirectory: Send + Sync + 'static {
    /// Registers an app; its `oauth_clients` row must exist. `AlreadyExists` when registered.
    async fn create_smart_app(&self, app: &SmartAppRecord) -> Result<(), StoreError>;

    async fn smart_app(&self, client_id: &str) -> Result<Option<SmartAppRecord>, StoreError>;

    /// Every registered app, by client id.
    async fn smart_apps(&self) -> Result<Vec<SmartAppRecord>, StoreError>;

    async fn create_auth_code(&self, code: &AuthCodeRecord) -> Result<(), StoreError>;

    /// Redeems a code: marks it used in one statement, so two concurrent redemptions cannot
    /// both succeed, and returns it with `used` telling whether it had been used before.
    /// Codes past `now` by a day are forgotten on the way.
    async fn use_auth_code(
        &self,
        code_hash: &str,
        now: i64,
    ) -> Result<Option<AuthCodeRecord>, StoreError>;

    async fn create_refresh_token(&self, token: &RefreshTokenRecord) -> Result<(), StoreError>;

    async fn refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError>;

    /// Spends a refresh token. `false` when it was already spent (a replay, or a race lost).
    async fn use_refresh_token(&self, token_hash: &str) -> Result<bool, StoreError>;

    /// Records that the access token `token_hash` (in `auth_tokens`) belongs to `family`.
    async fn add_family_token(&self, token_hash: &str, family: &str) -> Result<(), StoreError>;

    /// Revokes every refresh token of `family` and every access token issued in it.
    async fn revoke_family(&self, family: &str) -> Result<(), StoreError>;

    async fn create_launch_context(&self, launch: &LaunchContextRecord) -> Result<(), StoreError>;

    async fn launch_context(
        &self,
        launch_hash: &str,
    ) -> Result<Option<LaunchContextRecord>, StoreError>;

    /// Spends a launch context. `false` when it was already spent.
    async fn use_launch_context(&self, launch_hash: &str) -> Result<bool, StoreError>;

    /// Registers a client with its scopes, launch registrations, JWKS URL and app, in one
    /// transaction. `AlreadyExists` when the client id is taken.
    async fn register_client(&self, registration: &ClientRegistration) -> Result<(), StoreError>;

    /// Every registered client (systems, services and apps), by client id.
    async fn registered_clients(&self) -> Result<Vec<RegisteredClient>, StoreError>;

    /// Where a client publishes its keys, if it registered a JWKS URL.
    async fn client_jwks_uri(&self, client_id: &str) -> Result<Option<String>, StoreError>;

    /// Disables a client and, in the same transaction, revokes every token it holds or that
    /// was issued through it (client credentials, SMART access and refresh tokens). `false`
    /// when it is unknown or was disabled already.
    async fn disable_client(&self, client_id: &str) -> Result<bool, StoreError>;
}

/// Codes are kept this long past their expiry (long enough to recognise a replayed one).
const CODE_MEMORY_MICROS: i64 = 86_400 * 1_000_000;

/// A statement whose `$N` placeholders are `args` in order, each used once (SQLite binds them
/// by position).
fn st(sql: &str, args: Vec<Arg>) -> Statement {
    Statement {
        sql: sql.to_owned(),
        args,
    }
}

fn text(s: &str) -> Arg {
    Arg::Text(s.to_owned())
}

fn opt_text(s: Option<&str>) -> Arg {
    s.map_or(Arg::Null, text)
}

/// A boolean column read as 0/1 on both backends (PostgreSQL's `BOOLEAN`, SQLite's integer).
fn flag(column: &str) -> String {
    format!("CAST(CASE WHEN {column} THEN 1 ELSE 0 END AS BIGINT)")
}

fn boolean(c: &mut Cols) -> Result<bool, StoreError> {
    Ok(c.int()? != 0)
}

fn app_select() -> String {
    format!(
        "SELECT client_id, name, redirect_uris, scopes, {}, launch_url, created FROM smart_apps",
        flag("confidential")
    )
}

const APP_KINDS: [Kind; 7] = [
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Int,
    Kind::Text,
    Kind::Int,
];

fn app(row: Vec<Cell>) -> Result<SmartAppRecord, StoreError> {
    let mut c = Cols(row.into_iter());
    Ok(SmartAppRecord {
        client_id: c.text()?,
        name: c.text()?,
        redirect_uris: c.text()?.split_whitespace().map(str::to_owned).collect(),
        scopes: c.text()?,
        confidential: boolean(&mut c)?,
        launch_url: c.opt_text()?,
        created: c.int()?,
    })
}

const REFRESH_KINDS: [Kind; 9] = [
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Int,
    Kind::Int,
    Kind::Int,
    Kind::Int,
];

fn refresh(row: Vec<Cell>) -> Result<RefreshTokenRecord, StoreError> {
    let mut c = Cols(row.into_iter());
    Ok(RefreshTokenRecord {
        token_hash: c.text()?,
        family: c.text()?,
        client_id: c.text()?,
        subject: c.text()?,
        grant: c.text()?,
        created: c.int()?,
        expires_at: c.int()?,
        used: boolean(&mut c)?,
        revoked: boolean(&mut c)?,
    })
}

/// Runs `statement` and decodes its first row, if any, with `decode`.
async fn first<T>(
    exec: &mut dyn SqlExec,
    statement: &Statement,
    kinds: &[Kind],
    decode: fn(Vec<Cell>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    exec.cells(statement, kinds)
        .await?
        .into_iter()
        .next()
        .map(decode)
        .transpose()
}

/// [`SmartDirectory::create_smart_app`].
pub async fn create_smart_app(
    exec: &mut dyn SqlExec,
    a: &SmartAppRecord,
) -> Result<(), StoreError> {
    exec.execute(&st(
        "INSERT INTO smart_apps \
         (client_id, name, redirect_uris, scopes, confidential, launch_url, created) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        vec![
            text(&a.client_id),
            text(&a.name),
            Arg::Text(a.redirect_uris.join(" ")),
            text(&a.scopes),
            Arg::Bool(a.confidential),
            opt_text(a.launch_url.as_deref()),
            Arg::Int(a.created),
        ],
    ))
    .await?;
    Ok(())
}

/// [`SmartDirectory::smart_app`].
pub async fn smart_app(
    exec: &mut dyn SqlExec,
    client_id: &str,
) -> Result<Option<SmartAppRecord>, StoreError> {
    let sql = format!("{} WHERE client_id = $1", app_select());
    first(exec, &st(&sql, vec![text(client_id)]), &APP_KINDS, app).await
}

/// [`SmartDirectory::smart_apps`].
pub async fn smart_apps(exec: &mut dyn SqlExec) -> Result<Vec<SmartAppRecord>, StoreError> {
    let sql = format!("{} ORDER BY client_id", app_select());
    exec.cells(&st(&sql, vec![]), &APP_KINDS)
        .await?
        .into_iter()
        .map(app)
        .collect()
}

/// [`SmartDirectory::create_auth_code`].
pub async fn create_auth_code(
    exec: &mut dyn SqlExec,
    c: &AuthCodeRecord,
) -> Result<(), StoreError> {
    exec.execute(&st(
        "INSERT INTO smart_codes \
         (code_hash, client_id, redirect_uri, code_challenge, grant_json, expires_at, used) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        vec![
            text(&c.code_hash),
            text(&c.client_id),
            text(&c.redirect_uri),
            text(&c.code_challenge),
            text(&c.grant),
            Arg::Int(c.expires_at),
            Arg::Bool(c.used),
        ],
    ))
    .await?;
    Ok(())
}

/// [`SmartDirectory::use_auth_code`]. `exec` must see its own writes (SQLite: the writer).
pub async fn use_auth_code(
    exec: &mut dyn SqlExec,
    code_hash: &str,
    now: i64,
) -> Result<Option<AuthCodeRecord>, StoreError> {
    exec.execute(&st(
        "DELETE FROM smart_codes WHERE expires_at < $1",
        vec![Arg::Int(now.saturating_sub(CODE_MEMORY_MICROS))],
    ))
    .await?;
    let first_use = spend(exec, "smart_codes", "code_hash", code_hash).await?;
    let code = |row: Vec<Cell>| -> Result<AuthCodeRecord, StoreError> {
        let mut c = Cols(row.into_iter());
        Ok(AuthCodeRecord {
            code_hash: c.text()?,
            client_id: c.text()?,
            redirect_uri: c.text()?,
            code_challenge: c.text()?,
            grant: c.text()?,
            expires_at: c.int()?,
            used: false,
        })
    };
    let row = exec
        .cells(
            &st(
                "SELECT code_hash, client_id, redirect_uri, code_challenge, grant_json, \
                 expires_at FROM smart_codes WHERE code_hash = $1",
                vec![text(code_hash)],
            ),
            &[
                Kind::Text,
                Kind::Text,
                Kind::Text,
                Kind::Text,
                Kind::Text,
                Kind::Int,
            ],
        )
        .await?
        .into_iter()
        .next();
    row.map(code).transpose().map(|c| {
        c.map(|c| AuthCodeRecord {
            used: !first_use,
            ..c
        })
    })
}

/// [`SmartDirectory::create_refresh_token`].
pub async fn create_refresh_token(
    exec: &mut dyn SqlExec,
    t: &RefreshTokenRecord,
) -> Result<(), StoreError> {
    exec.execute(&st(
        "INSERT INTO smart_refresh_tokens \
         (token_hash, family, client_id, subject, grant_json, created, expires_at, used, revoked) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        vec![
            text(&t.token_hash),
            text(&t.family),
            text(&t.client_id),
            text(&t.subject),
            text(&t.grant),
            Arg::Int(t.created),
            Arg::Int(t.expires_at),
            Arg::Bool(t.used),
            Arg::Bool(t.revoked),
        ],
    ))
    .await?;
    Ok(())
}

/// [`SmartDirectory::refresh_token`].
pub async fn refresh_token(
    exec: &mut dyn SqlExec,
    token_hash: &str,
) -> Result<Option<RefreshTokenRecord>, StoreError> {
    let sql = format!(
        "SELECT token_hash, family, client_id, subject, grant_json, created, expires_at, {}, {} \
         FROM smart_refresh_tokens WHERE token_hash = $1",
        flag("used"),
        flag("revoked")
    );
    first(
        exec,
        &st(&sql, vec![text(token_hash)]),
        &REFRESH_KINDS,
        refresh,
    )
    .await
}

/// Marks a single-use row used, atomically: true only for the one caller that found it unused
/// (a code, refresh token or launch context presented twice is spent once). `table` and
/// `key` are this module's own constants, never input.
async fn spend(
    exec: &mut dyn SqlExec,
    table: &'static str,
    key: &'static str,
    value: &str,
) -> Result<bool, StoreError> {
    Ok(exec
        .execute(&st(
            &format!("UPDATE {table} SET used = $1 WHERE {key} = $2 AND used = $3"),
            vec![Arg::Bool(true), text(value), Arg::Bool(false)],
        ))
        .await?
        == 1)
}

/// [`SmartDirectory::use_refresh_token`].
pub async fn use_refresh_token(
    exec: &mut dyn SqlExec,
    token_hash: &str,
) -> Result<bool, StoreError> {
    spend(exec, "smart_refresh_tokens", "token_hash", token_hash).await
}

/// [`SmartDirectory::add_family_token`].
pub async fn add_family_token(
    exec: &mut dyn SqlExec,
    token_hash: &str,
    family: &str,
) -> Result<(), StoreError> {
    exec.execute(&st(
        "INSERT INTO smart_family_tokens (token_hash, family) VALUES ($1, $2)",
        vec![text(token_hash), text(family)],
    ))
    .await?;
    Ok(())
}

/// [`SmartDirectory::revoke_family`].
pub async fn revoke_family(exec: &mut dyn SqlExec, family: &str) -> Result<(), StoreError> {
    exec.execute(&st(
        "UPDATE smart_refresh_tokens SET revoked = $1 WHERE family = $2",
        vec![Arg::Bool(true), text(family)],
    ))
    .await?;
    exec.execute(&st(
        "UPDATE auth_tokens SET revoked = $1 WHERE token_hash IN \
         (SELECT token_hash FROM smart_family_tokens WHERE family = $2)",
        vec![Arg::Bool(true), text(family)],
    ))
    .await?;
    Ok(())
}

/// [`SmartDirectory::create_launch_context`].
pub async fn create_launch_context(
    exec: &mut dyn SqlExec,
    l: &LaunchContextRecord,
) -> Result<(), StoreError> {
    exec.execute(&st(
        "INSERT INTO smart_launches \
         (launch_hash, client_id, user_id, patient_id, expires_at, used) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        vec![
            text(&l.launch_hash),
            text(&l.client_id),
            text(&l.user_id),
            text(&l.patient_id),
            Arg::Int(l.expires_at),
            Arg::Bool(l.used),
        ],
    ))
    .await?;
    Ok(())
}

/// [`SmartDirectory::launch_context`].
pub async fn launch_context(
    exec: &mut dyn SqlExec,
    launch_hash: &str,
) -> Result<Option<LaunchContextRecord>, StoreError> {
    let sql = format!(
        "SELECT launch_hash, client_id, user_id, patient_id, expires_at, {} \
         FROM smart_launches WHERE launch_hash = $1",
        flag("used")
    );
    let decode = |row: Vec<Cell>| -> Result<LaunchContextRecord, StoreError> {
        let mut c = Cols(row.into_iter());
        Ok(LaunchContextRecord {
            launch_hash: c.text()?,
            client_id: c.text()?,
            user_id: c.text()?,
            patient_id: c.text()?,
            expires_at: c.int()?,
            used: boolean(&mut c)?,
        })
    };
    first(
        exec,
        &st(&sql, vec![text(launch_hash)]),
        &[
            Kind::Text,
            Kind::Text,
            Kind::Text,
            Kind::Text,
            Kind::Int,
            Kind::Int,
        ],
        decode,
    )
    .await
}

/// [`SmartDirectory::use_launch_context`].
pub async fn use_launch_context(
    exec: &mut dyn SqlExec,
    launch_hash: &str,
) -> Result<bool, StoreError> {
    spend(exec, "smart_launches", "launch_hash", launch_hash).await
}

/// [`SmartDirectory::register_client`], inside the caller's transaction.
pub async fn register_client(
    exec: &mut dyn SqlExec,
    r: &ClientRegistration,
) -> Result<(), StoreError> {
    let c = &r.client;
    exec.execute(&st(
        "INSERT INTO oauth_clients \
         (client_id, organisation_id, role, secret_hash, public_key_pem, created, disabled) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        vec![
            text(&c.client_id),
            text(&c.organisation_id),
            text(&c.role),
            opt_text(c.secret_hash.as_deref()),
            opt_text(c.public_key_pem.as_deref()),
            Arg::Int(c.created),
            Arg::Bool(c.disabled),
        ],
    ))
    .await?;
    if let Some(scope) = &r.scope {
        exec.execute(&st(
            "INSERT INTO client_scopes (client_id, scope) VALUES ($1, $2)",
            vec![text(&c.client_id), text(scope)],
        ))
        .await?;
    }
    for l in &r.launch {
        exec.execute(&st(
            "INSERT INTO launch_registrations (client_id, organisation_id, roles) \
             VALUES ($1, $2, $3)",
            vec![
                text(&c.client_id),
                text(&l.organisation_id),
                Arg::Text(l.roles.join(" ")),
            ],
        ))
        .await?;
    }
    if let Some(uri) = &r.jwks_uri {
        exec.execute(&st(
            "INSERT INTO client_jwks_uris (client_id, jwks_uri) VALUES ($1, $2)",
            vec![text(&c.client_id), text(uri)],
        ))
        .await?;
    }
    if let Some(app) = &r.app {
        create_smart_app(exec, app).await?;
    }
    Ok(())
}

/// [`SmartDirectory::registered_clients`].
pub async fn registered_clients(
    exec: &mut dyn SqlExec,
) -> Result<Vec<RegisteredClient>, StoreError> {
    let sql = format!(
        "SELECT c.client_id, c.organisation_id, c.role, c.secret_hash, c.public_key_pem, \
         c.created, {}, s.scope, j.jwks_uri FROM oauth_clients c \
         LEFT JOIN client_scopes s ON s.client_id = c.client_id \
         LEFT JOIN client_jwks_uris j ON j.client_id = c.client_id \
         ORDER BY c.client_id",
        flag("c.disabled")
    );
    let rows = exec
        .cells(
            &st(&sql, vec![]),
            &[
                Kind::Text,
                Kind::Text,
                Kind::Text,
                Kind::Text,
                Kind::Text,
                Kind::Int,
                Kind::Int,
                Kind::Text,
                Kind::Text,
            ],
        )
        .await?;
    let launches = exec
        .cells(
            &st(
                "SELECT client_id, organisation_id, roles FROM launch_registrations \
                 ORDER BY client_id, organisation_id",
                vec![],
            ),
            &[Kind::Text, Kind::Text, Kind::Text],
        )
        .await?
        .into_iter()
        .map(|row| {
            let mut c = Cols(row.into_iter());
            Ok(crate::LaunchRegistration {
                client_id: c.text()?,
                organisation_id: c.text()?,
                roles: c.text()?.split_whitespace().map(str::to_owned).collect(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let apps = smart_apps(exec).await?;
    rows.into_iter()
        .map(|row| {
            let mut c = Cols(row.into_iter());
            let client = crate::ClientRecord {
                client_id: c.text()?,
                organisation_id: c.text()?,
                role: c.text()?,
                secret_hash: c.opt_text()?,
                public_key_pem: c.opt_text()?,
                created: c.int()?,
                disabled: boolean(&mut c)?,
            };
            let (scope, jwks_uri) = (c.opt_text()?, c.opt_text()?);
            let launch = launches
                .iter()
                .filter(|l| l.client_id == client.client_id)
                .cloned()
                .collect();
            let app = apps
                .iter()
                .find(|a| a.client_id == client.client_id)
                .cloned();
            Ok(RegisteredClient {
                client,
                scope,
                launch,
                jwks_uri,
                app,
            })
        })
        .collect()
}

/// [`SmartDirectory::client_jwks_uri`].
pub async fn client_jwks_uri(
    exec: &mut dyn SqlExec,
    client_id: &str,
) -> Result<Option<String>, StoreError> {
    first(
        exec,
        &st(
            "SELECT jwks_uri FROM client_jwks_uris WHERE client_id = $1",
            vec![text(client_id)],
        ),
        &[Kind::Text],
        |row| Cols(row.into_iter()).text(),
    )
    .await
}

/// [`SmartDirectory::disable_client`], inside the caller's transaction.
pub async fn disable_client(exec: &mut dyn SqlExec, client_id: &str) -> Result<bool, StoreError> {
    let changed = exec
        .execute(&st(
            "UPDATE oauth_clients SET disabled = $1 WHERE client_id = $2 AND disabled = $3",
            vec![Arg::Bool(true), text(client_id), Arg::Bool(false)],
        ))
        .await?;
    if changed != 1 {
        return Ok(false);
    }
    // Its own tokens (client credentials).
    exec.execute(&st(
        "UPDATE auth_tokens SET revoked = $1 WHERE subject = $2",
        vec![Arg::Bool(true), text(client_id)],
    ))
    .await?;
    // Tokens issued to people through it: every access token of a family begun by one of its
    // codes (codes are remembered a day past expiry, longer than an access token lives) or
    // carried on by one of its refresh tokens.
    exec.execute(&st(
        "UPDATE auth_tokens SET revoked = $1 WHERE token_hash IN \
         (SELECT f.token_hash FROM smart_family_tokens f WHERE f.family IN \
         (SELECT code_hash FROM smart_codes WHERE client_id = $2 \
          UNION SELECT family FROM smart_refresh_tokens WHERE client_id = $3))",
        vec![Arg::Bool(true), text(client_id), text(client_id)],
    ))
    .await?;
    exec.execute(&st(
        "UPDATE smart_refresh_tokens SET revoked = $1 WHERE client_id = $2",
        vec![Arg::Bool(true), text(client_id)],
    ))
    .await?;
    // Launch contexts not yet spent cannot be.
    exec.execute(&st(
        "UPDATE smart_launches SET used = $1 WHERE client_id = $2",
        vec![Arg::Bool(true), text(client_id)],
    ))
    .await?;
    Ok(true)
}
