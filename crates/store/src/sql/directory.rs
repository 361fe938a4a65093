//! The statements of the [`Directory`](crate::Directory) — users, role grants, OAuth2 clients,
//! bearer tokens, client-assertion ids, launch registrations and client scopes (migrations
//! `0004_identity.sql`, `0008_launch.sql`, `0010_client_scopes.sql`) — shared by both backends.
//! Each placeholder is bound once, in the order it appears, so SQLite can bind by position.
//! Booleans are read as the columns are (SQLite 0/1, PostgreSQL `BOOLEAN`) through
//! `Kind::Bool`. Run and decoded by `crate::directory_sql`.

use super::{Arg, Statement};
use crate::directory::{ClientRecord, LaunchRegistration, RoleGrant, TokenRecord, UserRecord};

/// The columns a user is read with, in `crate::directory_sql`'s order.
pub const USER_COLUMNS: &str = "id, username, display_name, password_hash, totp_secret, \
     totp_last_step, failed_attempts, locked_until, training_valid_until, created, disabled";

/// The columns a client is read with.
pub const CLIENT_COLUMNS: &str =
    "client_id, organisation_id, role, secret_hash, public_key_pem, created, disabled";

/// The columns a token is read with.
pub const TOKEN_COLUMNS: &str =
    "token_hash, subject, principal, created, expires_at, last_used, revoked";

fn opt_text(st: &mut Statement, v: Option<&str>) -> String {
    st.bind(v.map_or(Arg::Null, |s| Arg::Text(s.to_owned())))
}

/// A nullable integer. A NULL is bound as text, so PostgreSQL is told the column's type.
fn opt_int(st: &mut Statement, v: Option<i64>) -> String {
    let p = st.bind(v.map_or(Arg::Null, Arg::Int));
    format!("CAST({p} AS BIGINT)")
}

/// A statement with one text argument: `sql` holds `{}` where it goes.
fn with_text(sql: &str, value: &str) -> Statement {
    let mut st = Statement::default();
    let p = st.text(value);
    st.sql = sql.replace("{}", &p);
    st
}

pub fn insert_user(u: &UserRecord) -> Statement {
    let mut st = Statement::default();
    let values = [
        st.text(&u.id),
        st.text(&u.username),
        st.text(&u.display_name),
        st.text(&u.password_hash),
        opt_text(&mut st, u.totp_secret.as_deref()),
        opt_int(&mut st, u.totp_last_step),
        st.bind(Arg::Int(u.failed_attempts)),
        opt_int(&mut st, u.locked_until),
        opt_int(&mut st, u.training_valid_until),
        st.bind(Arg::Int(u.created)),
        st.bind(Arg::Bool(u.disabled)),
    ];
    st.sql = format!(
        "INSERT INTO users ({USER_COLUMNS}) VALUES ({})",
        values.join(", ")
    );
    st
}

pub fn user_by_username(username: &str) -> Statement {
    with_text(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE username = {{}}"),
        username,
    )
}

pub fn user_by_id(id: &str) -> Statement {
    with_text(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE id = {{}}"),
        id,
    )
}

pub fn set_password(user_id: &str, hash: &str) -> Statement {
    let mut st = Statement::default();
    let h = st.text(hash);
    let id = st.text(user_id);
    st.sql = format!(
        "UPDATE users SET password_hash = {h}, failed_attempts = 0, locked_until = NULL \
         WHERE id = {id}"
    );
    st
}

pub fn set_totp_secret(user_id: &str, secret: &str) -> Statement {
    let mut st = Statement::default();
    let s = st.text(secret);
    let id = st.text(user_id);
    st.sql = format!("UPDATE users SET totp_secret = {s}, totp_last_step = NULL WHERE id = {id}");
    st
}

pub fn set_training_valid_until(user_id: &str, until: i64) -> Statement {
    let mut st = Statement::default();
    let u = st.bind(Arg::Int(until));
    let id = st.text(user_id);
    st.sql = format!("UPDATE users SET training_valid_until = {u} WHERE id = {id}");
    st
}

pub fn set_user_disabled(user_id: &str, disabled: bool) -> Statement {
    let mut st = Statement::default();
    let d = st.bind(Arg::Bool(disabled));
    let id = st.text(user_id);
    st.sql = format!("UPDATE users SET disabled = {d} WHERE id = {id}");
    st
}

/// Counts a failed sign-in; at `max_failures` in a row the count restarts and the account
/// locks until `lock_until`. Returns `locked_until`. The right-hand sides see the row as it
/// was, so both CASEs test the same count.
pub fn record_failed_sign_in(user_id: &str, max_failures: i64, lock_until: i64) -> Statement {
    let mut st = Statement::default();
    let max1 = st.bind(Arg::Int(max_failures));
    let max2 = st.bind(Arg::Int(max_failures));
    let until = st.bind(Arg::Int(lock_until));
    let id = st.text(user_id);
    st.sql = format!(
        "UPDATE users SET \
           failed_attempts = CASE WHEN failed_attempts + 1 >= {max1} THEN 0 ELSE failed_attempts + 1 END, \
           locked_until = CASE WHEN failed_attempts + 1 >= {max2} THEN {until} ELSE locked_until END \
         WHERE id = {id} RETURNING locked_until"
    );
    st
}

pub fn record_successful_sign_in(user_id: &str) -> Statement {
    with_text(
        "UPDATE users SET failed_attempts = 0, locked_until = NULL WHERE id = {}",
        user_id,
    )
}

/// Accepts TOTP time step `step` once: changes one row only if no later step was used.
pub fn use_totp_step(user_id: &str, step: i64) -> Statement {
    let mut st = Statement::default();
    let s1 = st.bind(Arg::Int(step));
    let id = st.text(user_id);
    let s2 = st.bind(Arg::Int(step));
    st.sql = format!(
        "UPDATE users SET totp_last_step = {s1} \
         WHERE id = {id} AND (totp_last_step IS NULL OR totp_last_step < {s2})"
    );
    st
}

pub fn grant_role(g: &RoleGrant) -> Statement {
    let mut st = Statement::default();
    let u = st.text(&g.user_id);
    let r = st.text(&g.role);
    let o = st.text(&g.organisation_id);
    st.sql = format!(
        "INSERT INTO role_grants (user_id, role, organisation_id) VALUES ({u}, {r}, {o}) \
         ON CONFLICT DO NOTHING"
    );
    st
}

/// `user_id, role, organisation_id` of a user's grants.
pub fn grants(user_id: &str) -> Statement {
    with_text(
        "SELECT user_id, role, organisation_id FROM role_grants WHERE user_id = {} \
         ORDER BY organisation_id, role",
        user_id,
    )
}

/// One `user_id` holding `role` and not disabled, if any.
pub fn role_is_held(role: &str) -> Statement {
    let mut st = Statement::default();
    let r = st.text(role);
    let d = st.bind(Arg::Bool(false));
    st.sql = format!(
        "SELECT g.user_id FROM role_grants g JOIN users u ON u.id = g.user_id \
         WHERE g.role = {r} AND u.disabled = {d} LIMIT 1"
    );
    st
}

pub fn insert_client(c: &ClientRecord) -> Statement {
    let mut st = Statement::default();
    let values = [
        st.text(&c.client_id),
        st.text(&c.organisation_id),
        st.text(&c.role),
        opt_text(&mut st, c.secret_hash.as_deref()),
        opt_text(&mut st, c.public_key_pem.as_deref()),
        st.bind(Arg::Int(c.created)),
        st.bind(Arg::Bool(c.disabled)),
    ];
    st.sql = format!(
        "INSERT INTO oauth_clients ({CLIENT_COLUMNS}) VALUES ({})",
        values.join(", ")
    );
    st
}

pub fn client(client_id: &str) -> Statement {
    with_text(
        &format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = {{}}"),
        client_id,
    )
}

pub fn insert_token(t: &TokenRecord) -> Statement {
    let mut st = Statement::default();
    let values = [
        st.text(&t.token_hash),
        st.text(&t.subject),
        st.text(&t.principal),
        st.bind(Arg::Int(t.created)),
        st.bind(Arg::Int(t.expires_at)),
        st.bind(Arg::Int(t.last_used)),
        st.bind(Arg::Bool(t.revoked)),
    ];
    st.sql = format!(
        "INSERT INTO auth_tokens ({TOKEN_COLUMNS}) VALUES ({})",
        values.join(", ")
    );
    st
}

pub fn token(token_hash: &str) -> Statement {
    with_text(
        &format!("SELECT {TOKEN_COLUMNS} FROM auth_tokens WHERE token_hash = {{}}"),
        token_hash,
    )
}

pub fn touch_token(token_hash: &str, now: i64) -> Statement {
    let mut st = Statement::default();
    let n1 = st.bind(Arg::Int(now));
    let h = st.text(token_hash);
    let n2 = st.bind(Arg::Int(now));
    st.sql = format!(
        "UPDATE auth_tokens SET last_used = {n1} WHERE token_hash = {h} AND last_used < {n2}"
    );
    st
}

pub fn update_token_principal(token_hash: &str, principal: &str) -> Statement {
    let mut st = Statement::default();
    let p = st.text(principal);
    let h = st.text(token_hash);
    st.sql = format!("UPDATE auth_tokens SET principal = {p} WHERE token_hash = {h}");
    st
}

/// Revokes the tokens whose `column` (`token_hash` or `subject`) is `value`.
fn revoke_where(column: &str, value: &str) -> Statement {
    let mut st = Statement::default();
    let t = st.bind(Arg::Bool(true));
    let v = st.text(value);
    st.sql = format!("UPDATE auth_tokens SET revoked = {t} WHERE {column} = {v}");
    st
}

pub fn revoke_token(token_hash: &str) -> Statement {
    revoke_where("token_hash", token_hash)
}

pub fn revoke_tokens_of(subject: &str) -> Statement {
    revoke_where("subject", subject)
}

/// Forgets assertion ids past their expiry.
pub fn purge_assertion_ids(now: i64) -> Statement {
    let mut st = Statement::default();
    let n = st.bind(Arg::Int(now));
    st.sql = format!("DELETE FROM client_assertion_ids WHERE expires_at < {n}");
    st
}

/// Records an assertion id; changes no row when it was used already.
pub fn insert_assertion_id(client_id: &str, jti: &str, expires_at: i64) -> Statement {
    let mut st = Statement::default();
    let c = st.text(client_id);
    let j = st.text(jti);
    let e = st.bind(Arg::Int(expires_at));
    st.sql = format!(
        "INSERT INTO client_assertion_ids (client_id, jti, expires_at) VALUES ({c}, {j}, {e}) \
         ON CONFLICT DO NOTHING"
    );
    st
}

pub fn register_launch(r: &LaunchRegistration) -> Statement {
    let mut st = Statement::default();
    let c = st.text(&r.client_id);
    let o = st.text(&r.organisation_id);
    let roles = st.text(&r.roles.join(" "));
    st.sql = format!(
        "INSERT INTO launch_registrations (client_id, organisation_id, roles) \
         VALUES ({c}, {o}, {roles}) \
         ON CONFLICT (client_id, organisation_id) DO UPDATE SET roles = excluded.roles"
    );
    st
}

/// `organisation_id, roles` of a client's launch registrations.
pub fn launch_registrations(client_id: &str) -> Statement {
    with_text(
        "SELECT organisation_id, roles FROM launch_registrations WHERE client_id = {} \
         ORDER BY organisation_id",
        client_id,
    )
}

pub fn purge_expired_tokens(now: i64) -> Statement {
    let mut st = Statement::default();
    let n = st.bind(Arg::Int(now));
    st.sql = format!("DELETE FROM auth_tokens WHERE expires_at < {n}");
    st
}

pub fn set_client_scope(client_id: &str, scope: &str) -> Statement {
    let mut st = Statement::default();
    let c = st.text(client_id);
    let s = st.text(scope);
    st.sql = format!(
        "INSERT INTO client_scopes (client_id, scope) VALUES ({c}, {s}) \
         ON CONFLICT (client_id) DO UPDATE SET scope = excluded.scope"
    );
    st
}

pub fn client_scope(client_id: &str) -> Statement {
    with_text(
        "SELECT scope FROM client_scopes WHERE client_id = {}",
        client_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite binds by position: every placeholder must appear once, in the order bound.
    fn placeholders_in_order(st: &Statement) {
        let mut found = Vec::new();
        let mut chars = st.sql.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            if c == '$' {
                let mut n = String::new();
                while let Some((_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
                    n.push(*d);
                    chars.next();
                }
                found.push(n.parse::<usize>().unwrap_or(0));
            }
        }
        assert_eq!(found, (1..=st.args.len()).collect::<Vec<_>>(), "{}", st.sql);
    }

    #[test]
    fn every_statement_binds_each_placeholder_once_in_order() {
        let user = UserRecord {
            id: "u".into(),
            username: "n".into(),
            display_name: "d".into(),
            password_hash: "h".into(),
            totp_secret: None,
            totp_last_step: Some(1),
            failed_attempts: 0,
            locked_until: None,
            training_valid_until: None,
            created: 0,
            disabled: false,
        };
        let client = ClientRecord {
            client_id: "c".into(),
            organisation_id: "o".into(),
            role: "system".into(),
            secret_hash: None,
            public_key_pem: None,
            created: 0,
            disabled: false,
        };
        let token = TokenRecord {
            token_hash: "t".into(),
            subject: "s".into(),
            principal: "{}".into(),
            created: 0,
            expires_at: 1,
            last_used: 0,
            revoked: false,
        };
        let grant = RoleGrant {
            user_id: "u".into(),
            role: "r".into(),
            organisation_id: "o".into(),
        };
        let launch = LaunchRegistration {
            client_id: "c".into(),
            organisation_id: "o".into(),
            roles: vec!["a".into(), "b".into()],
        };
        for st in [
            insert_user(&user),
            user_by_username("n"),
            user_by_id("u"),
            set_password("u", "h"),
            set_totp_secret("u", "s"),
            set_training_valid_until("u", 1),
            set_user_disabled("u", true),
            record_failed_sign_in("u", 5, 9),
            record_successful_sign_in("u"),
            use_totp_step("u", 3),
            grant_role(&grant),
            grants("u"),
            role_is_held("r"),
            insert_client(&client),
            self::client("c"),
            insert_token(&token),
            self::token("t"),
            touch_token("t", 1),
            update_token_principal("t", "{}"),
            revoke_token("t"),
            revoke_tokens_of("s"),
            purge_assertion_ids(1),
            insert_assertion_id("c", "j", 1),
            register_launch(&launch),
            launch_registrations("c"),
            purge_expired_tokens(1),
            set_client_scope("c", "system/Patient.rs"),
            client_scope("c"),
        ] {
            placeholders_in_order(&st);
        }
    }
}
