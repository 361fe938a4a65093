//! [`SmartDirectory`] over SQLite: SMART apps, authorisation codes, refresh token families,
//! EHR launch contexts (migration `0009_smart.sql`) and registered clients' JWKS URLs
//! (`0016_client_jwks_uri.sql`). The statements are shared with the other backend in
//! [`carerecord_store::smart`]; this file only picks the connection (writes and reads of what was just written on the writer).

use async_trait::async_trait;
use carerecord_store::smart;
use carerecord_store::{
    AuthCodeRecord, ClientRegistration, LaunchContextRecord, RefreshTokenRecord, RegisteredClient,
    SmartAppRecord, SmartDirectory, StoreError,
};

use crate::{Exec, SqliteStore, db_err};

impl SqliteStore {
    async fn smart_writer(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>, StoreError> {
        self.writer.acquire().await.map_err(db_err)
    }

    async fn smart_reader(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>, StoreError> {
        self.reader.acquire().await.map_err(db_err)
    }
}

#[async_trait]
impl SmartDirectory for SqliteStore {
    async fn create_smart_app(&self, a: &SmartAppRecord) -> Result<(), StoreError> {
        smart::create_smart_app(&mut Exec(&mut *self.smart_writer().await?), a).await
    }

    async fn smart_app(&self, client_id: &str) -> Result<Option<SmartAppRecord>, StoreError> {
        smart::smart_app(&mut Exec(&mut *self.smart_reader().await?), client_id).await
    }

    async fn smart_apps(&self) -> Result<Vec<SmartAppRecord>, StoreError> {
        smart::smart_apps(&mut Exec(&mut *self.smart_reader().await?)).await
    }

    async fn create_auth_code(&self, c: &AuthCodeRecord) -> Result<(), StoreError> {
        smart::create_auth_code(&mut Exec(&mut *self.smart_writer().await?), c).await
    }

    async fn use_auth_code(
        &self,
        code_hash: &str,
        now: i64,
    ) -> Result<Option<AuthCodeRecord>, StoreError> {
        // On one connection: the row just updated must be seen.
        smart::use_auth_code(&mut Exec(&mut *self.smart_writer().await?), code_hash, now).await
    }

    async fn create_refresh_token(&self, t: &RefreshTokenRecord) -> Result<(), StoreError> {
        smart::create_refresh_token(&mut Exec(&mut *self.smart_writer().await?), t).await
    }

    async fn refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        smart::refresh_token(&mut Exec(&mut *self.smart_writer().await?), token_hash).await
    }

    async fn use_refresh_token(&self, token_hash: &str) -> Result<bool, StoreError> {
        smart::use_refresh_token(&mut Exec(&mut *self.smart_writer().await?), token_hash).await
    }

    async fn add_family_token(&self, token_hash: &str, family: &str) -> Result<(), StoreError> {
        smart::add_family_token(
            &mut Exec(&mut *self.smart_writer().await?),
            token_hash,
            family,
        )
        .await
    }

    async fn revoke_family(&self, family: &str) -> Result<(), StoreError> {
        smart::revoke_family(&mut Exec(&mut *self.smart_writer().await?), family).await
    }

    async fn create_launch_context(&self, l: &LaunchContextRecord) -> Result<(), StoreError> {
        smart::create_launch_context(&mut Exec(&mut *self.smart_writer().await?), l).await
    }

    async fn launch_context(
        &self,
        launch_hash: &str,
    ) -> Result<Option<LaunchContextRecord>, StoreError> {
        smart::launch_context(&mut Exec(&mut *self.smart_writer().await?), launch_hash).await
    }

    async fn use_launch_context(&self, launch_hash: &str) -> Result<bool, StoreError> {
        smart::use_launch_context(&mut Exec(&mut *self.smart_writer().await?), launch_hash).await
    }

    async fn register_client(&self, r: &ClientRegistration) -> Result<(), StoreError> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err)?;
        smart::register_client(&mut Exec(&mut tx), r).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn registered_clients(&self) -> Result<Vec<RegisteredClient>, StoreError> {
        smart::registered_clients(&mut Exec(&mut *self.smart_reader().await?)).await
    }

    async fn client_jwks_uri(&self, client_id: &str) -> Result<Option<String>, StoreError> {
        smart::client_jwks_uri(&mut Exec(&mut *self.smart_reader().await?), client_id).await
    }

    async fn disable_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err)?;
        let done = smart::disable_client(&mut Exec(&mut tx), client_id).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(done)
    }
}
