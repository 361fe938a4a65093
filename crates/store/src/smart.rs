//! Storage for SMART App Launch (migration `0009_smart.sql`): the apps people authorise,
//! authorisation codes and refresh tokens (only as SHA-256 digests), the access tokens issued
//! in each grant's family, and the launch contexts of an EHR launch from the portal.
//!
//! A supertrait of [`Directory`](crate::Directory): both backends implement it over the same
//! database, and the identity crate reaches it through `ResourceStore::directory()`.
//! Every instant is microseconds since the Unix epoch.

use async_trait::async_trait;

use crate::error::StoreError;

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
}
