//! [`SmartDirectory`] over SQLite: SMART apps, authorisation codes, refresh token families
//! and EHR launch contexts (migration `0009_smart.sql`).

use async_trait::async_trait;
use carerecord_store::{
    AuthCodeRecord, LaunchContextRecord, RefreshTokenRecord, SmartAppRecord, SmartDirectory,
    StoreError,
};
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use crate::{SqliteStore, db_err};

/// Codes are kept this long past their expiry (long enough to recognise a replayed one).
const CODE_MEMORY_MICROS: i64 = 86_400 * 1_000_000;

fn app(row: &SqliteRow) -> Result<SmartAppRecord, StoreError> {
    let uris: String = row.try_get("redirect_uris").map_err(db_err)?;
    Ok(SmartAppRecord {
        client_id: row.try_get("client_id").map_err(db_err)?,
        name: row.try_get("name").map_err(db_err)?,
        redirect_uris: uris.split_whitespace().map(str::to_owned).collect(),
        scopes: row.try_get("scopes").map_err(db_err)?,
        confidential: row.try_get("confidential").map_err(db_err)?,
        launch_url: row.try_get("launch_url").map_err(db_err)?,
        created: row.try_get("created").map_err(db_err)?,
    })
}

fn refresh(row: &SqliteRow) -> Result<RefreshTokenRecord, StoreError> {
    Ok(RefreshTokenRecord {
        token_hash: row.try_get("token_hash").map_err(db_err)?,
        family: row.try_get("family").map_err(db_err)?,
        client_id: row.try_get("client_id").map_err(db_err)?,
        subject: row.try_get("subject").map_err(db_err)?,
        grant: row.try_get("grant_json").map_err(db_err)?,
        created: row.try_get("created").map_err(db_err)?,
        expires_at: row.try_get("expires_at").map_err(db_err)?,
        used: row.try_get("used").map_err(db_err)?,
        revoked: row.try_get("revoked").map_err(db_err)?,
    })
}

#[async_trait]
impl SmartDirectory for SqliteStore {
    async fn create_smart_app(&self, a: &SmartAppRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO smart_apps \
             (client_id, name, redirect_uris, scopes, confidential, launch_url, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&a.client_id)
        .bind(&a.name)
        .bind(a.redirect_uris.join(" "))
        .bind(&a.scopes)
        .bind(a.confidential)
        .bind(&a.launch_url)
        .bind(a.created)
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn smart_app(&self, client_id: &str) -> Result<Option<SmartAppRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT client_id, name, redirect_uris, scopes, confidential, launch_url, created \
             FROM smart_apps WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?;
        row.as_ref().map(app).transpose()
    }

    async fn smart_apps(&self) -> Result<Vec<SmartAppRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT client_id, name, redirect_uris, scopes, confidential, launch_url, created \
             FROM smart_apps ORDER BY client_id",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.iter().map(app).collect()
    }

    async fn create_auth_code(&self, c: &AuthCodeRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO smart_codes \
             (code_hash, client_id, redirect_uri, code_challenge, grant_json, expires_at, used) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&c.code_hash)
        .bind(&c.client_id)
        .bind(&c.redirect_uri)
        .bind(&c.code_challenge)
        .bind(&c.grant)
        .bind(c.expires_at)
        .bind(c.used)
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn use_auth_code(
        &self,
        code_hash: &str,
        now: i64,
    ) -> Result<Option<AuthCodeRecord>, StoreError> {
        sqlx::query("DELETE FROM smart_codes WHERE expires_at < $1")
            .bind(now.saturating_sub(CODE_MEMORY_MICROS))
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        let first =
            sqlx::query("UPDATE smart_codes SET used = $1 WHERE code_hash = $2 AND used = $3")
                .bind(true)
                .bind(code_hash)
                .bind(false)
                .execute(&self.writer)
                .await
                .map_err(db_err)?
                .rows_affected()
                == 1;
        // Read on the writer: the row just updated must be seen.
        let row = sqlx::query(
            "SELECT code_hash, client_id, redirect_uri, code_challenge, grant_json, expires_at \
             FROM smart_codes WHERE code_hash = $1",
        )
        .bind(code_hash)
        .fetch_optional(&self.writer)
        .await
        .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(AuthCodeRecord {
            code_hash: row.try_get("code_hash").map_err(db_err)?,
            client_id: row.try_get("client_id").map_err(db_err)?,
            redirect_uri: row.try_get("redirect_uri").map_err(db_err)?,
            code_challenge: row.try_get("code_challenge").map_err(db_err)?,
            grant: row.try_get("grant_json").map_err(db_err)?,
            expires_at: row.try_get("expires_at").map_err(db_err)?,
            used: !first,
        }))
    }

    async fn create_refresh_token(&self, t: &RefreshTokenRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO smart_refresh_tokens \
             (token_hash, family, client_id, subject, grant_json, created, expires_at, used, revoked) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&t.token_hash)
        .bind(&t.family)
        .bind(&t.client_id)
        .bind(&t.subject)
        .bind(&t.grant)
        .bind(t.created)
        .bind(t.expires_at)
        .bind(t.used)
        .bind(t.revoked)
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT token_hash, family, client_id, subject, grant_json, created, expires_at, \
             used, revoked FROM smart_refresh_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.writer)
        .await
        .map_err(db_err)?;
        row.as_ref().map(refresh).transpose()
    }

    async fn use_refresh_token(&self, token_hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE smart_refresh_tokens SET used = $1 WHERE token_hash = $2 AND used = $3",
        )
        .bind(true)
        .bind(token_hash)
        .bind(false)
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_family_token(&self, token_hash: &str, family: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO smart_family_tokens (token_hash, family) VALUES ($1, $2)")
            .bind(token_hash)
            .bind(family)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn revoke_family(&self, family: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE smart_refresh_tokens SET revoked = $1 WHERE family = $2")
            .bind(true)
            .bind(family)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "UPDATE auth_tokens SET revoked = $1 WHERE token_hash IN \
             (SELECT token_hash FROM smart_family_tokens WHERE family = $2)",
        )
        .bind(true)
        .bind(family)
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn create_launch_context(&self, l: &LaunchContextRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO smart_launches \
             (launch_hash, client_id, user_id, patient_id, expires_at, used) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&l.launch_hash)
        .bind(&l.client_id)
        .bind(&l.user_id)
        .bind(&l.patient_id)
        .bind(l.expires_at)
        .bind(l.used)
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn launch_context(
        &self,
        launch_hash: &str,
    ) -> Result<Option<LaunchContextRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT launch_hash, client_id, user_id, patient_id, expires_at, used \
             FROM smart_launches WHERE launch_hash = $1",
        )
        .bind(launch_hash)
        .fetch_optional(&self.writer)
        .await
        .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(LaunchContextRecord {
            launch_hash: row.try_get("launch_hash").map_err(db_err)?,
            client_id: row.try_get("client_id").map_err(db_err)?,
            user_id: row.try_get("user_id").map_err(db_err)?,
            patient_id: row.try_get("patient_id").map_err(db_err)?,
            expires_at: row.try_get("expires_at").map_err(db_err)?,
            used: row.try_get("used").map_err(db_err)?,
        }))
    }

    async fn use_launch_context(&self, launch_hash: &str) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE smart_launches SET used = $1 WHERE launch_hash = $2 AND used = $3")
                .bind(true)
                .bind(launch_hash)
                .bind(false)
                .execute(&self.writer)
                .await
                .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
}
