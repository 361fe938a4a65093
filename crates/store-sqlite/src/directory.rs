//! [`Directory`] over SQLite: users, role grants, clients, tokens and assertion ids
//! (migration `0004_identity.sql`). Writes go through the single writer connection like every
//! other write; `$N` placeholders are used once each, in order, so SQLite binds them by position.

use std::sync::Arc;

use async_trait::async_trait;
use carerecord_store::{
    ClientRecord, Directory, LaunchRegistration, RoleGrant, StoreError, TokenRecord, UserRecord,
};
use sqlx::AssertSqlSafe;
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use crate::{SqliteStore, db_err};

const USER_COLUMNS: &str = "id, username, display_name, password_hash, totp_secret, totp_last_step, \
     failed_attempts, locked_until, training_valid_until, created, disabled";

const CLIENT_COLUMNS: &str =
    "client_id, organisation_id, role, secret_hash, public_key_pem, created, disabled";

const TOKEN_COLUMNS: &str =
    "token_hash, subject, principal, created, expires_at, last_used, revoked";

fn user(row: &SqliteRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: row.try_get("id").map_err(db_err)?,
        username: row.try_get("username").map_err(db_err)?,
        display_name: row.try_get("display_name").map_err(db_err)?,
        password_hash: row.try_get("password_hash").map_err(db_err)?,
        totp_secret: row.try_get("totp_secret").map_err(db_err)?,
        totp_last_step: row.try_get("totp_last_step").map_err(db_err)?,
        failed_attempts: row.try_get("failed_attempts").map_err(db_err)?,
        locked_until: row.try_get("locked_until").map_err(db_err)?,
        training_valid_until: row.try_get("training_valid_until").map_err(db_err)?,
        created: row.try_get("created").map_err(db_err)?,
        disabled: row.try_get("disabled").map_err(db_err)?,
    })
}

fn client(row: &SqliteRow) -> Result<ClientRecord, StoreError> {
    Ok(ClientRecord {
        client_id: row.try_get("client_id").map_err(db_err)?,
        organisation_id: row.try_get("organisation_id").map_err(db_err)?,
        role: row.try_get("role").map_err(db_err)?,
        secret_hash: row.try_get("secret_hash").map_err(db_err)?,
        public_key_pem: row.try_get("public_key_pem").map_err(db_err)?,
        created: row.try_get("created").map_err(db_err)?,
        disabled: row.try_get("disabled").map_err(db_err)?,
    })
}

fn token(row: &SqliteRow) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        token_hash: row.try_get("token_hash").map_err(db_err)?,
        subject: row.try_get("subject").map_err(db_err)?,
        principal: row.try_get("principal").map_err(db_err)?,
        created: row.try_get("created").map_err(db_err)?,
        expires_at: row.try_get("expires_at").map_err(db_err)?,
        last_used: row.try_get("last_used").map_err(db_err)?,
        revoked: row.try_get("revoked").map_err(db_err)?,
    })
}

impl SqliteStore {
    /// This store as a [`Directory`] (the same database).
    pub fn as_directory(&self) -> Arc<dyn Directory> {
        Arc::new(self.clone())
    }
}

#[async_trait]
impl Directory for SqliteStore {
    async fn create_user(&self, u: &UserRecord) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        )))
        .bind(&u.id)
        .bind(&u.username)
        .bind(&u.display_name)
        .bind(&u.password_hash)
        .bind(&u.totp_secret)
        .bind(u.totp_last_step)
        .bind(u.failed_attempts)
        .bind(u.locked_until)
        .bind(u.training_valid_until)
        .bind(u.created)
        .bind(u.disabled)
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        )))
        .bind(username)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?;
        row.as_ref().map(user).transpose()
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?;
        row.as_ref().map(user).transpose()
    }

    async fn set_password(&self, user_id: &str, hash: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE users SET password_hash = $1, failed_attempts = 0, locked_until = NULL \
             WHERE id = $2",
        )
        .bind(hash)
        .bind(user_id)
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn set_totp_secret(&self, user_id: &str, secret: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET totp_secret = $1, totp_last_step = NULL WHERE id = $2")
            .bind(secret)
            .bind(user_id)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn set_training_valid_until(&self, user_id: &str, until: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET training_valid_until = $1 WHERE id = $2")
            .bind(until)
            .bind(user_id)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn set_user_disabled(&self, user_id: &str, disabled: bool) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
            .bind(disabled)
            .bind(user_id)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn record_failed_sign_in(
        &self,
        user_id: &str,
        max_failures: i64,
        lock_until: i64,
    ) -> Result<Option<i64>, StoreError> {
        // The right-hand sides see the row as it was, so both CASEs test the same count.
        let row = sqlx::query(
            "UPDATE users SET \
               failed_attempts = CASE WHEN failed_attempts + 1 >= $1 THEN 0 ELSE failed_attempts + 1 END, \
               locked_until = CASE WHEN failed_attempts + 1 >= $2 THEN $3 ELSE locked_until END \
             WHERE id = $4 RETURNING locked_until",
        )
        .bind(max_failures)
        .bind(max_failures)
        .bind(lock_until)
        .bind(user_id)
        .fetch_optional(&self.writer)
        .await
        .map_err(db_err)?;
        match row {
            Some(r) => r.try_get("locked_until").map_err(db_err),
            None => Ok(None),
        }
    }

    async fn record_successful_sign_in(&self, user_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET failed_attempts = 0, locked_until = NULL WHERE id = $1")
            .bind(user_id)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn use_totp_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = $1 \
             WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $3)",
        )
        .bind(step)
        .bind(user_id)
        .bind(step)
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn grant_role(&self, g: &RoleGrant) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO role_grants (user_id, role, organisation_id) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&g.user_id)
        .bind(&g.role)
        .bind(&g.organisation_id)
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn grants(&self, user_id: &str) -> Result<Vec<RoleGrant>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, role, organisation_id FROM role_grants WHERE user_id = $1 \
             ORDER BY organisation_id, role",
        )
        .bind(user_id)
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(RoleGrant {
                    user_id: r.try_get("user_id").map_err(db_err)?,
                    role: r.try_get("role").map_err(db_err)?,
                    organisation_id: r.try_get("organisation_id").map_err(db_err)?,
                })
            })
            .collect()
    }

    async fn role_is_held(&self, role: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT g.user_id FROM role_grants g JOIN users u ON u.id = g.user_id \
             WHERE g.role = $1 AND u.disabled = $2 LIMIT 1",
        )
        .bind(role)
        .bind(false)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?;
        Ok(row.is_some())
    }

    async fn create_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO oauth_clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )))
        .bind(&c.client_id)
        .bind(&c.organisation_id)
        .bind(&c.role)
        .bind(&c.secret_hash)
        .bind(&c.public_key_pem)
        .bind(c.created)
        .bind(c.disabled)
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = $1"
        )))
        .bind(client_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?;
        row.as_ref().map(client).transpose()
    }

    async fn create_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO auth_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )))
        .bind(&t.token_hash)
        .bind(&t.subject)
        .bind(&t.principal)
        .bind(t.created)
        .bind(t.expires_at)
        .bind(t.last_used)
        .bind(t.revoked)
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn token(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM auth_tokens WHERE token_hash = $1"
        )))
        .bind(token_hash)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?;
        row.as_ref().map(token).transpose()
    }

    async fn touch_token(&self, token_hash: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE auth_tokens SET last_used = $1 WHERE token_hash = $2 AND last_used < $3",
        )
        .bind(now)
        .bind(token_hash)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn update_token_principal(
        &self,
        token_hash: &str,
        principal: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE auth_tokens SET principal = $1 WHERE token_hash = $2")
            .bind(principal)
            .bind(token_hash)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn revoke_token(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE auth_tokens SET revoked = $1 WHERE token_hash = $2")
            .bind(true)
            .bind(token_hash)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn revoke_tokens_of(&self, subject: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE auth_tokens SET revoked = $1 WHERE subject = $2")
            .bind(true)
            .bind(subject)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn use_assertion_id(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM client_assertion_ids WHERE expires_at < $1")
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        let done = sqlx::query(
            "INSERT INTO client_assertion_ids (client_id, jti, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(client_id)
        .bind(jti)
        .bind(expires_at)
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn register_launch(&self, r: &LaunchRegistration) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO launch_registrations (client_id, organisation_id, roles) \
             VALUES ($1, $2, $3) \
             ON CONFLICT (client_id, organisation_id) DO UPDATE SET roles = excluded.roles",
        )
        .bind(&r.client_id)
        .bind(&r.organisation_id)
        .bind(r.roles.join(" "))
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn launch_registrations(
        &self,
        client_id: &str,
    ) -> Result<Vec<LaunchRegistration>, StoreError> {
        let rows = sqlx::query(
            "SELECT organisation_id, roles FROM launch_registrations WHERE client_id = $1 \
             ORDER BY organisation_id",
        )
        .bind(client_id)
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                let roles: String = row.try_get("roles").map_err(db_err)?;
                Ok(LaunchRegistration {
                    client_id: client_id.to_owned(),
                    organisation_id: row.try_get("organisation_id").map_err(db_err)?,
                    roles: roles.split_whitespace().map(str::to_owned).collect(),
                })
            })
            .collect()
    }

    async fn purge_expired_tokens(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM auth_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn set_client_scope(&self, client_id: &str, scope: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO client_scopes (client_id, scope) VALUES ($1, $2) \
             ON CONFLICT (client_id) DO UPDATE SET scope = excluded.scope",
        )
        .bind(client_id)
        .bind(scope)
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn client_scope(&self, client_id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT scope FROM client_scopes WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err)?;
        row.map(|r| r.try_get("scope").map_err(db_err)).transpose()
    }
}
