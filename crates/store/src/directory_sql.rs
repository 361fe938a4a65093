//! The [`Directory`](crate::Directory) written once for both backends over a connection
//! ([`SqlExec`]), as [`crate::break_glass`] is: the statements are
//! [`crate::sql::directory`]'s, the decoding is here. Each backend's `Directory` only picks
//! the connection (a reader, or the writer) and calls these.

use crate::cells::{Cell, Cols, Kind};
use crate::directory::{ClientRecord, LaunchRegistration, RoleGrant, TokenRecord, UserRecord};
use crate::engine::SqlExec;
use crate::error::StoreError;
use crate::sql::directory as sql;

/// The kinds of [`sql::USER_COLUMNS`].
const USER_KINDS: [Kind; 11] = [
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Int,
    Kind::Int,
    Kind::Int,
    Kind::Int,
    Kind::Int,
    Kind::Bool,
];

/// The kinds of [`sql::CLIENT_COLUMNS`].
const CLIENT_KINDS: [Kind; 7] = [
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Int,
    Kind::Bool,
];

/// The kinds of [`sql::TOKEN_COLUMNS`].
const TOKEN_KINDS: [Kind; 7] = [
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Int,
    Kind::Int,
    Kind::Int,
    Kind::Bool,
];

fn user(row: Vec<Cell>) -> Result<UserRecord, StoreError> {
    let mut c = Cols(row.into_iter());
    Ok(UserRecord {
        id: c.text()?,
        username: c.text()?,
        display_name: c.text()?,
        password_hash: c.text()?,
        totp_secret: c.opt_text()?,
        totp_last_step: c.opt_int()?,
        failed_attempts: c.int()?,
        locked_until: c.opt_int()?,
        training_valid_until: c.opt_int()?,
        created: c.int()?,
        disabled: c.bool()?,
    })
}

fn client_row(row: Vec<Cell>) -> Result<ClientRecord, StoreError> {
    let mut c = Cols(row.into_iter());
    Ok(ClientRecord {
        client_id: c.text()?,
        organisation_id: c.text()?,
        role: c.text()?,
        secret_hash: c.opt_text()?,
        public_key_pem: c.opt_text()?,
        created: c.int()?,
        disabled: c.bool()?,
    })
}

fn token_row(row: Vec<Cell>) -> Result<TokenRecord, StoreError> {
    let mut c = Cols(row.into_iter());
    Ok(TokenRecord {
        token_hash: c.text()?,
        subject: c.text()?,
        principal: c.text()?,
        created: c.int()?,
        expires_at: c.int()?,
        last_used: c.int()?,
        revoked: c.bool()?,
    })
}

/// The first row of `st`, decoded.
async fn one<T>(
    exec: &mut dyn SqlExec,
    st: &crate::sql::Statement,
    kinds: &[Kind],
    decode: fn(Vec<Cell>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    exec.cells(st, kinds)
        .await?
        .into_iter()
        .next()
        .map(decode)
        .transpose()
}

pub async fn create_user(exec: &mut dyn SqlExec, u: &UserRecord) -> Result<(), StoreError> {
    exec.execute(&sql::insert_user(u)).await.map(drop)
}

pub async fn user_by_username(
    exec: &mut dyn SqlExec,
    username: &str,
) -> Result<Option<UserRecord>, StoreError> {
    one(exec, &sql::user_by_username(username), &USER_KINDS, user).await
}

pub async fn user_by_id(
    exec: &mut dyn SqlExec,
    id: &str,
) -> Result<Option<UserRecord>, StoreError> {
    one(exec, &sql::user_by_id(id), &USER_KINDS, user).await
}

pub async fn set_password(
    exec: &mut dyn SqlExec,
    user_id: &str,
    hash: &str,
) -> Result<(), StoreError> {
    exec.execute(&sql::set_password(user_id, hash))
        .await
        .map(drop)
}

pub async fn set_totp_secret(
    exec: &mut dyn SqlExec,
    user_id: &str,
    secret: &str,
) -> Result<(), StoreError> {
    exec.execute(&sql::set_totp_secret(user_id, secret))
        .await
        .map(drop)
}

pub async fn set_training_valid_until(
    exec: &mut dyn SqlExec,
    user_id: &str,
    until: i64,
) -> Result<(), StoreError> {
    exec.execute(&sql::set_training_valid_until(user_id, until))
        .await
        .map(drop)
}

pub async fn set_user_disabled(
    exec: &mut dyn SqlExec,
    user_id: &str,
    disabled: bool,
) -> Result<(), StoreError> {
    exec.execute(&sql::set_user_disabled(user_id, disabled))
        .await
        .map(drop)
}

/// `locked_until` after counting the failure; `None` for an unknown user.
pub async fn record_failed_sign_in(
    exec: &mut dyn SqlExec,
    user_id: &str,
    max_failures: i64,
    lock_until: i64,
) -> Result<Option<i64>, StoreError> {
    let st = sql::record_failed_sign_in(user_id, max_failures, lock_until);
    let rows = exec.cells(&st, &[Kind::Int]).await?;
    match rows.into_iter().next() {
        Some(row) => Cols(row.into_iter()).opt_int(),
        None => Ok(None),
    }
}

pub async fn record_successful_sign_in(
    exec: &mut dyn SqlExec,
    user_id: &str,
) -> Result<(), StoreError> {
    exec.execute(&sql::record_successful_sign_in(user_id))
        .await
        .map(drop)
}

pub async fn use_totp_step(
    exec: &mut dyn SqlExec,
    user_id: &str,
    step: i64,
) -> Result<bool, StoreError> {
    Ok(exec.execute(&sql::use_totp_step(user_id, step)).await? == 1)
}

pub async fn grant_role(exec: &mut dyn SqlExec, g: &RoleGrant) -> Result<(), StoreError> {
    exec.execute(&sql::grant_role(g)).await.map(drop)
}

pub async fn grants(exec: &mut dyn SqlExec, user_id: &str) -> Result<Vec<RoleGrant>, StoreError> {
    exec.cells(&sql::grants(user_id), &[Kind::Text, Kind::Text, Kind::Text])
        .await?
        .into_iter()
        .map(|row| {
            let mut c = Cols(row.into_iter());
            Ok(RoleGrant {
                user_id: c.text()?,
                role: c.text()?,
                organisation_id: c.text()?,
            })
        })
        .collect()
}

pub async fn role_is_held(exec: &mut dyn SqlExec, role: &str) -> Result<bool, StoreError> {
    Ok(!exec
        .cells(&sql::role_is_held(role), &[Kind::Text])
        .await?
        .is_empty())
}

pub async fn create_client(exec: &mut dyn SqlExec, c: &ClientRecord) -> Result<(), StoreError> {
    exec.execute(&sql::insert_client(c)).await.map(drop)
}

pub async fn client(
    exec: &mut dyn SqlExec,
    client_id: &str,
) -> Result<Option<ClientRecord>, StoreError> {
    one(exec, &sql::client(client_id), &CLIENT_KINDS, client_row).await
}

pub async fn create_token(exec: &mut dyn SqlExec, t: &TokenRecord) -> Result<(), StoreError> {
    exec.execute(&sql::insert_token(t)).await.map(drop)
}

pub async fn token(
    exec: &mut dyn SqlExec,
    token_hash: &str,
) -> Result<Option<TokenRecord>, StoreError> {
    one(exec, &sql::token(token_hash), &TOKEN_KINDS, token_row).await
}

pub async fn touch_token(
    exec: &mut dyn SqlExec,
    token_hash: &str,
    now: i64,
) -> Result<(), StoreError> {
    exec.execute(&sql::touch_token(token_hash, now))
        .await
        .map(drop)
}

pub async fn update_token_principal(
    exec: &mut dyn SqlExec,
    token_hash: &str,
    principal: &str,
) -> Result<(), StoreError> {
    exec.execute(&sql::update_token_principal(token_hash, principal))
        .await
        .map(drop)
}

pub async fn revoke_token(exec: &mut dyn SqlExec, token_hash: &str) -> Result<(), StoreError> {
    exec.execute(&sql::revoke_token(token_hash)).await.map(drop)
}

pub async fn revoke_tokens_of(exec: &mut dyn SqlExec, subject: &str) -> Result<(), StoreError> {
    exec.execute(&sql::revoke_tokens_of(subject))
        .await
        .map(drop)
}

/// Spends assertion id `jti` of `client_id` (forgetting expired ones first); `false` when it
/// was spent already.
pub async fn use_assertion_id(
    exec: &mut dyn SqlExec,
    client_id: &str,
    jti: &str,
    expires_at: i64,
    now: i64,
) -> Result<bool, StoreError> {
    exec.execute(&sql::purge_assertion_ids(now)).await?;
    Ok(exec
        .execute(&sql::insert_assertion_id(client_id, jti, expires_at))
        .await?
        == 1)
}

pub async fn register_launch(
    exec: &mut dyn SqlExec,
    r: &LaunchRegistration,
) -> Result<(), StoreError> {
    exec.execute(&sql::register_launch(r)).await.map(drop)
}

pub async fn launch_registrations(
    exec: &mut dyn SqlExec,
    client_id: &str,
) -> Result<Vec<LaunchRegistration>, StoreError> {
    exec.cells(
        &sql::launch_registrations(client_id),
        &[Kind::Text, Kind::Text],
    )
    .await?
    .into_iter()
    .map(|row| {
        let mut c = Cols(row.into_iter());
        Ok(LaunchRegistration {
            client_id: client_id.to_owned(),
            organisation_id: c.text()?,
            roles: c.text()?.split_whitespace().map(str::to_owned).collect(),
        })
    })
    .collect()
}

pub async fn purge_expired_tokens(exec: &mut dyn SqlExec, now: i64) -> Result<u64, StoreError> {
    exec.execute(&sql::purge_expired_tokens(now)).await
}

pub async fn set_client_scope(
    exec: &mut dyn SqlExec,
    client_id: &str,
    scope: &str,
) -> Result<(), StoreError> {
    exec.execute(&sql::set_client_scope(client_id, scope))
        .await
        .map(drop)
}

pub async fn client_scope(
    exec: &mut dyn SqlExec,
    client_id: &str,
) -> Result<Option<String>, StoreError> {
    match exec
        .cells(&sql::client_scope(client_id), &[Kind::Text])
        .await?
        .into_iter()
        .next()
    {
        Some(row) => Cols(row.into_iter()).text().map(Some),
        None => Ok(None),
    }
}
