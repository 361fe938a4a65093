//! A `batch` Bundle: each entry on its own, each with its own audit entry.

use super::*;

/// A batch: each entry on its own, each with its own audit entry — a write's in its own
/// transaction, a read's or a refusal's through the group commit before the response leaves.
pub(super) async fn batch(
    state: &AppState,
    ctx: &BundleOptions,
    raw: Vec<Value>,
    message: Option<&str>,
) -> Result<Value, ApiError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut records = Vec::new();
    for e in raw {
        let e = match parse_entry(e, &ctx.base, &ctx.access, message) {
            Ok(e) => e,
            Err(err) => {
                if ctx.audited {
                    let (outcome, rule) = crate::audit::outcome_of_error(&err);
                    records.push(crate::audit::record(
                        &ctx.access.principal,
                        AuditAction::Transaction,
                        outcome,
                        rule,
                        &AuditNote::default(),
                        ctx.client_address.clone(),
                    ));
                }
                out.push(error_entry(&err));
                continue;
            }
        };
        if e.method == Method::Get {
            let (v, record) = audited_read(state, ctx, &e).await;
            out.push(v);
            records.extend(record);
            continue;
        }
        match batch_write(state, ctx, &e).await {
            Ok(v) => out.push(v),
            Err(err) => {
                if ctx.audited {
                    let note = refused_note(state, &e, &err).await;
                    records.push(entry_record(ctx, &e, &note, Err(&err)));
                }
                out.push(error_entry(&err));
            }
        }
    }
    record_all(state, records).await?;
    Ok(response_bundle("batch-response", out))
}

/// One write entry of a batch, in its own transaction, committed with its audit entry.
async fn batch_write(state: &AppState, ctx: &BundleOptions, e: &Entry) -> Result<Value, ApiError> {
    let mut tx = state.store.begin().await?;
    let mut matched = None;
    let w = match e.method {
        Method::Delete => delete_entry(tx.as_mut(), ctx, e).await?,
        Method::Post
            if e.rt == ResourceType::Patient
                && let Some(matcher) = &ctx.people =>
        {
            let body = e.resource.clone().unwrap_or(Value::Null);
            let (w, m) =
                crate::fhir::people::resolve(tx.as_mut(), matcher.as_ref(), &ctx.access, &body)
                    .await?;
            matched = Some(m);
            w
        }
        Method::Post => {
            let body = e.resource.clone().unwrap_or(Value::Null);
            interactions::create(
                tx.as_mut(),
                e.rt,
                body,
                e.if_none_exist.as_deref(),
                &ctx.base,
                None,
            )
            .await?
        }
        _ => {
            let body = e.resource.clone().unwrap_or(Value::Null);
            match &e.query {
                Some(cond) => {
                    interactions::conditional_update(tx.as_mut(), e.rt, cond, body, &ctx.base)
                        .await?
                }
                None => {
                    let id = put_target(tx.as_mut(), ctx, e).await?;
                    let if_match = interactions::if_match(e.if_match.as_deref())?;
                    if needs_checks(ctx, e)
                        && let Some(old) = tx.current(e.rt, &id).await?
                        && !old.deleted
                    {
                        check_scoped(ctx, e, &old)?;
                    }
                    interactions::update(tx.as_mut(), e.rt, &id, body, if_match).await?
                }
            }
        }
    };
    if let Written::Created(r) | Written::Updated(r) | Written::Existing(r) = &w {
        check_scoped(ctx, e, r)?;
    }
    if ctx.audited {
        let note = write_note(e.method, &w);
        tx.append_audit(vec![entry_record(ctx, e, &note, Ok(()))])
            .await?;
    }
    tx.commit().await?;
    match &matched {
        Some(m) => matched_entry(ctx, &w, m),
        None => written_entry(ctx, &w),
    }
}
