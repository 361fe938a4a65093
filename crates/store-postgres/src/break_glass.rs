//! The privacy officers' break-glass review queue on PostgreSQL: the shared statements of
//! `carerecord_store::sql::break_glass`, decoded here.

use carerecord_store::sql::Statement;
use carerecord_store::sql::break_glass::{
    GrantRow, grant_statement, queue_statement, record, review_statement,
};
use carerecord_store::{BreakGlassRecord, BreakGlassReview, ReviewStatus, StoreError};
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::{AssertSqlSafe, Row as _};

use crate::{arguments, db_err};

fn decode(row: &PgRow) -> Result<BreakGlassRecord, StoreError> {
    let t = |i: usize| row.try_get::<String, _>(i).map_err(db_err);
    record(GrantRow {
        text: [t(0)?, t(1)?, t(2)?, t(3)?, t(4)?, t(5)?],
        granted_at: row.try_get(6).map_err(db_err)?,
        expires_at: row.try_get(7).map_err(db_err)?,
        reviewed_by: row.try_get(8).map_err(db_err)?,
        reviewed_at: row.try_get(9).map_err(db_err)?,
        review_outcome: row.try_get(10).map_err(db_err)?,
        review_note: row.try_get(11).map_err(db_err)?,
    })
}

async fn fetch(pool: &PgPool, st: &Statement) -> Result<Vec<BreakGlassRecord>, StoreError> {
    let mut c = pool.acquire().await.map_err(db_err)?;
    let rows = sqlx::query_with(AssertSqlSafe(st.sql.clone()), arguments(st)?)
        .fetch_all(&mut *c)
        .await
        .map_err(db_err)?;
    rows.iter().map(decode).collect()
}

pub(crate) async fn queue(
    pool: &PgPool,
    org_id: &str,
    status: ReviewStatus,
    limit: u32,
) -> Result<Vec<BreakGlassRecord>, StoreError> {
    fetch(pool, &queue_statement(org_id, status, limit)).await
}

pub(crate) async fn grant(
    pool: &PgPool,
    grant_id: &str,
) -> Result<Option<BreakGlassRecord>, StoreError> {
    Ok(fetch(pool, &grant_statement(grant_id))
        .await?
        .into_iter()
        .next())
}

/// Inside the caller's write transaction.
pub(crate) async fn review(
    conn: &mut PgConnection,
    grant_id: &str,
    review: &BreakGlassReview,
) -> Result<bool, StoreError> {
    let st = review_statement(grant_id, review);
    let row = sqlx::query_with(AssertSqlSafe(st.sql.clone()), arguments(&st)?)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(row.is_some())
}
