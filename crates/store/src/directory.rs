//! The directory of who may sign in: users and their role grants, registered OAuth2 clients,
//! issued tokens (stored only as SHA-256 digests) and the client-assertion ids already used.
//!
//! Kept apart from [`ResourceStore`](crate::ResourceStore) because none of it is FHIR: the
//! identity crate is its only user. Roles and principals travel as text here (the store does
//! not know the access crate's types); the identity crate parses them once.
//! Every instant is microseconds since the Unix epoch.

use async_trait::async_trait;

use crate::error::StoreError;

/// A person who can sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    pub username: String,
    pub display_name: String,
    /// An Argon2id PHC string.
    pub password_hash: String,
    /// The base32 TOTP secret; `None` until one is enrolled.
    pub totp_secret: Option<String>,
    /// The last TOTP time step accepted, so a code cannot be used twice.
    pub totp_last_step: Option<i64>,
    pub failed_attempts: i64,
    pub locked_until: Option<i64>,
    pub training_valid_until: Option<i64>,
    pub created: i64,
    pub disabled: bool,
}

/// One role a user holds at one organisation (`role` is the access crate's kebab-case name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RoleGrant {
    pub user_id: String,
    pub role: String,
    pub organisation_id: String,
}

/// A registered OAuth2 client: a system acting for one organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub client_id: String,
    pub organisation_id: String,
    /// `system` or `service`.
    pub role: String,
    /// An Argon2id PHC string of the client secret, for `client_secret_basic`/`_post`.
    pub secret_hash: Option<String>,
    /// A PEM public key (RSA or EC P-384), for `private_key_jwt`.
    pub public_key_pem: Option<String>,
    pub created: i64,
    pub disabled: bool,
}

/// A care home organisation a registered client may launch users into (signed context
/// launch), and the roles (the access crate's kebab-case names) it may assert there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LaunchRegistration {
    pub client_id: String,
    pub organisation_id: String,
    pub roles: Vec<String>,
}

/// An issued bearer token. Only its SHA-256 digest is stored, so a copy of the database
/// holds no usable token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Hex SHA-256 of the opaque token.
    pub token_hash: String,
    /// The user id or client id the token was issued to.
    pub subject: String,
    /// The principal the token acts as, as JSON (the access crate's `Principal`).
    pub principal: String,
    pub created: i64,
    /// Absolute expiry.
    pub expires_at: i64,
    /// When the token was last used (for idle expiry); written at most once a minute.
    pub last_used: i64,
    pub revoked: bool,
}

/// Storage for identities and tokens. Implemented by both backends.
#[async_trait]
pub trait Directory: crate::SmartDirectory + Send + Sync + 'static {
    /// Adds a user; `AlreadyExists` when the id or username is taken.
    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError>;

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;

    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError>;

    /// Replaces the password hash (and clears failures and any lock).
    async fn set_password(&self, user_id: &str, password_hash: &str) -> Result<(), StoreError>;

    /// Enrols a new TOTP secret (forgetting the last step used).
    async fn set_totp_secret(&self, user_id: &str, secret: &str) -> Result<(), StoreError>;

    async fn set_training_valid_until(&self, user_id: &str, until: i64) -> Result<(), StoreError>;

    async fn set_user_disabled(&self, user_id: &str, disabled: bool) -> Result<(), StoreError>;

    /// Counts one failed sign-in. When this makes `max_failures` in a row, the account is
    /// locked until `lock_until` and the count starts again. Returns the lock, if any, that
    /// is now in force. One statement, so concurrent guesses cannot slip past the count.
    async fn record_failed_sign_in(
        &self,
        user_id: &str,
        max_failures: i64,
        lock_until: i64,
    ) -> Result<Option<i64>, StoreError>;

    /// A successful sign-in: clears the failure count and any lock.
    async fn record_successful_sign_in(&self, user_id: &str) -> Result<(), StoreError>;

    /// Marks TOTP step `step` used. `false` when that step (or a later one) was already
    /// used: RFC 6238 §5.2 says a code is accepted once. Atomic.
    async fn use_totp_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError>;

    /// Grants a role; granting the same one twice is not an error.
    async fn grant_role(&self, grant: &RoleGrant) -> Result<(), StoreError>;

    /// The user's grants, in a stable order (organisation, role).
    async fn grants(&self, user_id: &str) -> Result<Vec<RoleGrant>, StoreError>;

    /// Whether any enabled user holds `role` anywhere.
    async fn role_is_held(&self, role: &str) -> Result<bool, StoreError>;

    /// Registers a client; `AlreadyExists` when the client id is taken.
    async fn create_client(&self, client: &ClientRecord) -> Result<(), StoreError>;

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError>;

    async fn create_token(&self, token: &TokenRecord) -> Result<(), StoreError>;

    async fn token(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// Records use of a token at `now` (idle expiry).
    async fn touch_token(&self, token_hash: &str, now: i64) -> Result<(), StoreError>;

    /// Replaces the principal a token acts as (after the user renews their training).
    async fn update_token_principal(
        &self,
        token_hash: &str,
        principal: &str,
    ) -> Result<(), StoreError>;

    async fn revoke_token(&self, token_hash: &str) -> Result<(), StoreError>;

    /// Revokes every token issued to `subject` (a user disabled, a client withdrawn).
    async fn revoke_tokens_of(&self, subject: &str) -> Result<(), StoreError>;

    /// Records a client assertion's `jti`. `false` when this client already used it (a
    /// replay). Ids past `expires_at` are forgotten, as an assertion is refused after its
    /// `exp` anyway.
    async fn use_assertion_id(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Registers (or replaces) the roles a client may launch users into an organisation with.
    async fn register_launch(&self, registration: &LaunchRegistration) -> Result<(), StoreError>;

    /// The organisations a client may launch users into, in organisation order.
    async fn launch_registrations(
        &self,
        client_id: &str,
    ) -> Result<Vec<LaunchRegistration>, StoreError>;

    /// Deletes tokens that expired before `now`; returns how many.
    async fn purge_expired_tokens(&self, now: i64) -> Result<u64, StoreError>;

    /// Registers (or replaces) the SMART scopes a client may be granted (a space-separated
    /// scope string, already checked by the caller).
    async fn set_client_scope(&self, client_id: &str, scope: &str) -> Result<(), StoreError>;

    /// The scopes a client is registered for; `None` when it has none registered.
    async fn client_scope(&self, client_id: &str) -> Result<Option<String>, StoreError>;
}
