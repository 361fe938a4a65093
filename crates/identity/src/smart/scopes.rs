//! Which scopes exist, and which of those requested an app may be granted.

use super::CONTEXT_SCOPES;

/// The letters (`cruds`) of a resource scope's permissions, v1 or v2.
pub(super) fn permissions(p: &str) -> Option<String> {
    match p {
        "read" => return Some("rs".into()),
        "write" => return Some("cud".into()),
        "*" => return Some("cruds".into()),
        _ => {}
    }
    // v2: a non-empty subsequence of c r u d s, in that order.
    let mut rest = "cruds";
    for c in p.chars() {
        let at = rest.find(c)?;
        rest = &rest[at + 1..];
    }
    (!p.is_empty()).then(|| p.to_owned())
}

/// A resource scope split into context, type and permission letters.
pub(super) fn resource_scope(s: &str) -> Option<(&str, &str, String, Option<&str>)> {
    let (s, query) = match s.split_once('?') {
        Some((s, q)) => (s, Some(q)),
        None => (s, None),
    };
    let (context, rest) = s.split_once('/')?;
    if !matches!(context, "patient" | "user" | "system") {
        return None;
    }
    let (ty, perms) = rest.split_once('.')?;
    if ty != "*" && ty.parse::<carerecord_fhir::ResourceType>().is_err() {
        return None;
    }
    // The one restriction the access crate enforces: `?category=` on Observation and Condition.
    if let Some(q) = query
        && (!matches!(ty, "Observation" | "Condition")
            || !q.starts_with("category=")
            || q.contains('&'))
    {
        return None;
    }
    Some((context, ty, permissions(perms)?, query))
}

/// Whether `scope` is one carerecord understands.
pub fn scope_is_known(scope: &str) -> bool {
    CONTEXT_SCOPES.contains(&scope) || resource_scope(scope).is_some()
}

/// Whether the registered scopes allow `scope`: listed as such, or a resource scope covered
/// by a registered one of the same context with `*` or the same type and at least the same
/// permissions (and no narrower query).
pub(super) fn covered(scope: &str, registered: &[&str]) -> bool {
    if registered.contains(&scope) {
        return true;
    }
    let Some((ctx, ty, perms, query)) = resource_scope(scope) else {
        return false;
    };
    registered
        .iter()
        .filter_map(|r| resource_scope(r))
        .any(|(rctx, rty, rperms, rquery)| {
            rctx == ctx
                && (rty == "*" || rty == ty)
                && perms.chars().all(|c| rperms.contains(c))
                && (rquery.is_none() || rquery == query)
        })
}

/// The scopes granted for `requested`: each one the app is registered for, in the order
/// asked. Unknown or malformed scopes are refused (`invalid_scope`); known ones the app may
/// not have are left out, as RFC 6749 §3.3 allows, and the response says what was granted.
///
/// The one place scopes are decided at issue; the access crate's scope module decides what
/// they permit on each FHIR request.
pub fn grant_scopes(requested: &str, registered: &str) -> Result<Vec<String>, String> {
    let registered: Vec<&str> = registered.split_whitespace().collect();
    let mut granted: Vec<String> = Vec::new();
    for s in requested.split_whitespace() {
        if !scope_is_known(s) {
            return Err(format!("the scope {s} is not supported"));
        }
        if s.starts_with("system/") {
            return Err(format!(
                "{s}: system/ scopes are for backend services (client credentials), not for \
                 an app a person authorises"
            ));
        }
        if covered(s, &registered) && !granted.iter().any(|g| g == s) {
            granted.push(s.to_owned());
        }
    }
    Ok(granted)
}
