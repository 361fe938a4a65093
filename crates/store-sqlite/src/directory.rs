//! [`Directory`] over SQLite: users, role grants, clients, tokens, assertion ids, launch
//! registrations and client scopes. The statements and their decoding are shared with the
//! PostgreSQL backend (`carerecord_store::directory_sql`); here only the connection is chosen:
//! writes go through the single writer connection like every other write, reads to a reader.

use std::sync::Arc;

use async_trait::async_trait;
use carerecord_store::directory_sql as shared;
use carerecord_store::{
    ClientRecord, Directory, LaunchRegistration, RoleGrant, StoreError, TokenRecord, UserRecord,
};
use sqlx::Sqlite;
use sqlx::pool::PoolConnection;

use crate::{Exec, SqliteStore, db_err};

impl SqliteStore {
    /// This store as a [`Directory`] (the same database).
    pub fn as_directory(&self) -> Arc<dyn Directory> {
        Arc::new(self.clone())
    }

    async fn writer_conn(&self) -> Result<PoolConnection<Sqlite>, StoreError> {
        self.writer.acquire().await.map_err(db_err)
    }
}

#[async_trait]
impl Directory for SqliteStore {
    async fn create_user(&self, u: &UserRecord) -> Result<(), StoreError> {
        let mut c = self.writer_conn().await?;
        shared::create_user(&mut Exec(&mut c), u).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let mut c = self.reader().await?;
        shared::user_by_username(&mut Exec(&mut c), username).await
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let mut c = self.reader().await?;
        shared::user_by_id(&mut Exec(&mut c), id).await
    }

    async fn set_password(&self, user_id: &str, hash: &str) -> Result<(), StoreError> {
        let mut c = self.writer_conn().await?;
        shared::set_password(&mut Exec(&mut c), user_id, hash).await
    }

    async fn set_totp_secret(&self, user_id: &str, secret: &str) -> Result<(), StoreError> {
        let mut c = self.writer_conn().await?;
        shared::set_totp_secret(&mut Exec(&mut c), user_id, secret).await
    }

    async fn set_training_valid_until(&self, user_id: &str, until: i64) -> Result<(), StoreError> {
        let mut c = self.writer_conn().await?;
        shared::set_training_valid_until(&mut Exec(&mut c), user_id, until).await
    }

    async fn set_user_disabled(&self, user_id: &str, disabled: bool) -> Result<(), StoreError> {
        let mut c = self.writer_conn().await?;
        shared::set_user_disabled(&mut Exec(&mut c), user_id, disabled).await
    }

    async fn record_failed_sign_in(
        &self,
        user_id: &str,
        max_failures: i64,
        lock_until: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut c = self.writer_conn().await?;
        shared::record_failed_sign_in(&mut Exec(&mut c), user_id, max_failures, lock_until).await
    }

    async fn record_successful_sign_in(&self, user_id: &str) -> Result<(), StoreError> {
        let mut c = self.writer_conn().await?;
        shared::record_successful_sign_in(&mut Exec(&mut c), user_id).await
    }

    async fn use_totp_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError> {
        let mut c = self.writer_conn().await?;
        shared::use_totp_step(&mut Exec(&mut c), user_id, step).await
    }

    async fn grant_role(&self, g: &RoleGrant) -> Result<(), StoreError> {
        let mut c = self.writer_conn().await?;
        shared::grant_role(&mut Exec(&mut c), g).await
    }

    async fn grants(&self, user_id: &str) -> Result<Vec<RoleGrant>, StoreError> {
        let mut c = self.reader().await?;
        shared::grants(&mut Exec(&mut c), user_id).await
    }

    async fn role_is_held(&self, role: &str) -> Result<bool, StoreError> {
        let mut c = self.reader().await?;
        shared::role_is_held(&mut Exec(&mut c), role).await
    }

    async fn create_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        let mut c = self.writer_conn().await?;
        shared::create_client(&mut Exec(&mut c), client).await
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let mut c = self.reader().await?;
        shared::client(&mut Exec(&mut c), client_id).await
    }

    async fn create_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        let mut c = self.writer_conn().await?;
        shared::create_token(&mut Exec(&mut c), t).await
    }

    async fn token(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let mut c = self.reader().await?;
        shared::token(&mut Exec(&mut c), token_hash).await
    }

    async fn touch_token(&self, token_hash: &str, now: i64) -> Result<(), StoreError> {
        let mut c = self.writer_conn().await?;
        shared::touch_token(&mut Exec(&mut c), token_hash, now).await
    }

    async fn update_token_principal(
        &self,
        token_hash: &str,
        principal: &str,
    ) -> Result<(), StoreError> {
        let mut c = self.writer_conn().await?;
        shared::update_token_principal(&mut Exec(&mut c), token_hash, principal).await
    }

    async fn revoke_token(&self, token_hash: &str) -> Result<(), StoreError> {
        let mut c = self.writer_conn().await?;
        shared::revoke_token(&mut Exec(&mut c), token_hash).await
    }

    async fn revoke_tokens_of(&self, subject: &str) -> Result<(), StoreError> {
        let mut c = self.writer_conn().await?;
        shared::revoke_tokens_of(&mut Exec(&mut c), subject).await
    }

    async fn use_assertion_id(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut c = self.writer_conn().await?;
        shared::use_assertion_id(&mut Exec(&mut c), client_id, jti, expires_at, now).await
    }

    async fn register_launch(&self, r: &LaunchRegistration) -> Result<(), StoreError> {
        let mut c = self.writer_conn().await?;
        shared::register_launch(&mut Exec(&mut c), r).await
    }

    async fn launch_registrations(
        &self,
        client_id: &str,
    ) -> Result<Vec<LaunchRegistration>, StoreError> {
        let mut c = self.reader().await?;
        shared::launch_registrations(&mut Exec(&mut c), client_id).await
    }

    async fn purge_expired_tokens(&self, now: i64) -> Result<u64, StoreError> {
        let mut c = self.writer_conn().await?;
        shared::purge_expired_tokens(&mut Exec(&mut c), now).await
    }

    async fn set_client_scope(&self, client_id: &str, scope: &str) -> Result<(), StoreError> {
        let mut c = self.writer_conn().await?;
        shared::set_client_scope(&mut Exec(&mut c), client_id, scope).await
    }

    async fn client_scope(&self, client_id: &str) -> Result<Option<String>, StoreError> {
        let mut c = self.reader().await?;
        shared::client_scope(&mut Exec(&mut c), client_id).await
    }
}
