//! Public keys published at a registered JWKS URL (`jwks_uri`), for client assertions
//! (`private_key_jwt`) and signed context launches.
//!
//! The identity crate knows no HTTP: the fetch is a [`JwksFetcher`] the binary installs (the
//! server's, over HTTPS with a timeout, a size limit and no redirects). Here are the rules
//! around it: which URLs may be registered and fetched ([`check_jwks_uri`]: HTTPS, or plain
//! HTTP on loopback only when the deployment allows it, for tests), a cache per URL that lives
//! [`JwksSettings::cache_ttl`], and one refetch when a token names a key the cached document
//! lacks (a rotation) — at most once per [`JwksSettings::refetch_interval`], so a forged `kid`
//! cannot make carerecord hammer the system's server. A key removed from the document stops
//! verifying at the next fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::oauth::decoding_key;

/// The largest JWKS document accepted, in bytes (a set of a few keys is a few kilobytes).
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// How long a fetch may take, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Fetches a JWKS document. Implemented over HTTP by the server crate.
#[async_trait]
pub trait JwksFetcher: Send + Sync + 'static {
    /// The document at `url` as text, or why not (in words for the audit and the logs: no
    /// key material, nothing personal). Must refuse redirects, stop after
    /// [`MAX_JWKS_BYTES`] and give up after [`FETCH_TIMEOUT`].
    async fn fetch(&self, url: &str) -> Result<String, String>;
}

/// How the JWKS cache behaves.
#[derive(Debug, Clone)]
pub struct JwksSettings {
    /// A fetched document is used this long before it is fetched again.
    pub cache_ttl: Duration,
    /// At most one fetch per URL this often, however many unknown `kid`s are presented.
    pub refetch_interval: Duration,
    /// Accept `http://` on 127.0.0.1, ::1 and localhost (tests and local demos only).
    pub allow_loopback_http: bool,
}

impl Default for JwksSettings {
    fn default() -> Self {
        JwksSettings {
            cache_ttl: Duration::from_secs(300),
            refetch_interval: Duration::from_secs(30),
            allow_loopback_http: false,
        }
    }
}

/// Whether `url` may be registered and fetched as a JWKS URL: absolute `https://` with a
/// host, no user info and no fragment; or `http://` on a loopback host when `allow_loopback_http`.
pub fn check_jwks_uri(url: &str, allow_loopback_http: bool) -> Result<(), String> {
    let url = url.trim();
    if url.len() > 2_000 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a JWKS URL is one web address without spaces".into());
    }
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err("a JWKS URL must start with https://".into());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') || url.contains('#') {
        return Err("a JWKS URL needs a host, and no user name or fragment".into());
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return Err("a JWKS URL needs a host".into());
    }
    if !https {
        let loopback = matches!(host, "127.0.0.1" | "::1" | "localhost");
        if !(allow_loopback_http && loopback) {
            return Err("a JWKS URL must use https://".into());
        }
    }
    Ok(())
}

/// Why no key came from a JWKS URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    /// The document was fetched and has no key that fits the token.
    UnknownKey,
    /// The document could not be had (unreachable, too big, not a JWK Set, not allowed).
    Unavailable(String),
}

#[derive(Debug, Default)]
struct Entry {
    /// The last document fetched, and when.
    document: Option<(String, Instant)>,
    /// When a fetch was last begun (successful or not): the rate limit.
    last_attempt: Option<Instant>,
    /// Why the last fetch failed, while it is the latest word.
    last_error: Option<String>,
}

/// The cache of JWKS documents by URL, and the fetcher once installed.
pub struct JwksCache {
    settings: JwksSettings,
    fetcher: OnceLock<Arc<dyn JwksFetcher>>,
    entries: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("settings", &self.settings)
            .field("fetcher", &self.fetcher.get().is_some())
            .finish_non_exhaustive()
    }
}

enum Step {
    /// Use this document.
    Use(String),
    /// Fetch now (the attempt is recorded already).
    Fetch,
    /// Nothing to use and no fetch allowed yet.
    Refuse(JwksError),
}

impl JwksCache {
    pub fn new(settings: JwksSettings) -> Self {
        JwksCache {
            settings,
            fetcher: OnceLock::new(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> &JwksSettings {
        &self.settings
    }

    /// Installs the fetcher. Once only: `false` if one was installed already.
    pub fn set_fetcher(&self, fetcher: Arc<dyn JwksFetcher>) -> bool {
        self.fetcher.set(fetcher).is_ok()
    }

    /// The key at `url` that verifies `alg` (and has id `kid`, when given).
    pub async fn key(
        &self,
        url: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<DecodingKey, JwksError> {
        self.key_at(url, alg, kid, Instant::now()).await
    }

    /// [`Self::key`] at `now` (the clock is a parameter so the rules can be tested).
    async fn key_at(
        &self,
        url: &str,
        alg: Algorithm,
        kid: Option<&str>,
        now: Instant,
    ) -> Result<DecodingKey, JwksError> {
        check_jwks_uri(url, self.settings.allow_loopback_http).map_err(JwksError::Unavailable)?;
        // A fresh document that has the key answers at once; otherwise (none, stale, or a
        // `kid` it lacks) one fetch, if the rate limit allows.
        match self.plan(url, now, |doc| decoding_key(doc, alg, kid).is_some()) {
            Step::Use(doc) => {
                return decoding_key(&doc, alg, kid).ok_or(JwksError::UnknownKey);
            }
            Step::Refuse(e) => return Err(e),
            Step::Fetch => {}
        }
        let fetched = match self.fetcher.get() {
            Some(f) => f.fetch(url).await,
            None => Err("this service cannot fetch JWKS URLs (no fetcher installed)".into()),
        }
        .and_then(|doc| {
            let set: Result<jsonwebtoken::jwk::JwkSet, _> = serde_json::from_str(&doc);
            set.map(|_| doc)
                .map_err(|_| "the JWKS URL did not answer with a JWK Set".to_owned())
        });
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| JwksError::Unavailable("the key cache is unusable".into()))?;
        let entry = entries.entry(url.to_owned()).or_default();
        match fetched {
            Ok(doc) => {
                entry.document = Some((doc.clone(), now));
                entry.last_error = None;
                decoding_key(&doc, alg, kid).ok_or(JwksError::UnknownKey)
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS fetch failed");
                // A document that cannot be refreshed is not trusted any longer: a key may
                // have been withdrawn from it for good reason.
                entry.document = None;
                entry.last_error = Some(e.clone());
                Err(JwksError::Unavailable(e))
            }
        }
    }

    /// What to do for `url` at `now`; records the attempt when the answer is to fetch.
    fn plan(&self, url: &str, now: Instant, has_key: impl Fn(&str) -> bool) -> Step {
        let Ok(mut entries) = self.entries.lock() else {
            return Step::Refuse(JwksError::Unavailable("the key cache is unusable".into()));
        };
        let entry = entries.entry(url.to_owned()).or_default();
        let fresh = entry
            .document
            .as_ref()
            .filter(|(_, at)| now.saturating_duration_since(*at) < self.settings.cache_ttl)
            .map(|(doc, _)| doc.clone());
        if let Some(doc) = &fresh
            && has_key(doc)
        {
            return Step::Use(doc.clone());
        }
        let may_fetch = entry
            .last_attempt
            .is_none_or(|at| now.saturating_duration_since(at) >= self.settings.refetch_interval);
        if may_fetch {
            entry.last_attempt = Some(now);
            return Step::Fetch;
        }
        match (fresh, &entry.last_error) {
            (Some(doc), _) => Step::Use(doc),
            (None, Some(e)) => Step::Refuse(JwksError::Unavailable(e.clone())),
            (None, None) => Step::Refuse(JwksError::Unavailable(
                "the JWKS URL was asked moments ago; try again shortly".into(),
            )),
        }
    }
}

/// The public JWK (with `kid`) of an EC P-256 public key in SPKI PEM, as a system publishes it
/// at its JWKS URL. For the demo and the tests (with [`crate::launch::generate_es256_key_pair`]).
pub fn es256_public_jwk(
    public_pem: &str,
    kid: &str,
) -> Result<serde_json::Value, crate::IdentityError> {
    use base64::Engine as _;
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    use p256::pkcs8::DecodePublicKey as _;
    let key = p256::PublicKey::from_public_key_pem(public_pem)
        .map_err(|e| crate::IdentityError::Invalid(format!("not an EC P-256 public key: {e}")))?;
    let point = key.to_encoded_point(false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        return Err(crate::IdentityError::Invalid(
            "an EC point without coordinates".into(),
        ));
    };
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    Ok(serde_json::json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
        "x": b64(x), "y": b64(y),
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn only_https_or_allowed_loopback_http_jwks_urls_are_accepted() {
        assert!(check_jwks_uri("https://ehr.example/.well-known/jwks.json", false).is_ok());
        assert!(check_jwks_uri("https://ehr.example:8443/jwks", false).is_ok());
        assert!(check_jwks_uri("http://ehr.example/jwks", true).is_err());
        assert!(check_jwks_uri("http://127.0.0.1:9000/jwks", false).is_err());
        assert!(check_jwks_uri("http://127.0.0.1:9000/jwks", true).is_ok());
        assert!(check_jwks_uri("http://[::1]:9000/jwks", true).is_ok());
        assert!(check_jwks_uri("http://localhost/jwks", true).is_ok());
        assert!(check_jwks_uri("http://localhost.evil.example/jwks", true).is_err());
        assert!(check_jwks_uri("https://user@ehr.example/jwks", false).is_err());
        assert!(check_jwks_uri("https://ehr.example/jwks#k", false).is_err());
        assert!(check_jwks_uri("ftp://ehr.example/jwks", false).is_err());
        assert!(check_jwks_uri("https:///jwks", false).is_err());
        assert!(check_jwks_uri("https://ehr.example/a b", false).is_err());
    }

    /// Serves whatever document it holds, counting fetches.
    struct Fake {
        doc: Mutex<Result<String, String>>,
        fetches: AtomicUsize,
    }

    #[async_trait]
    impl JwksFetcher for Fake {
        async fn fetch(&self, _url: &str) -> Result<String, String> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            self.doc.lock().map_err(|e| e.to_string())?.clone()
        }
    }

    fn p256_jwk(kid: &str) -> serde_json::Value {
        let (_, public) = crate::launch::generate_es256_key_pair().unwrap();
        es256_public_jwk(&public, kid).unwrap()
    }

    fn set(keys: &[&serde_json::Value]) -> Result<String, String> {
        Ok(serde_json::json!({ "keys": keys }).to_string())
    }

    const URL: &str = "https://ehr.example/jwks";

    fn cache(fake: &Arc<Fake>) -> JwksCache {
        let c = JwksCache::new(JwksSettings {
            cache_ttl: Duration::from_secs(300),
            refetch_interval: Duration::from_secs(30),
            allow_loopback_http: false,
        });
        assert!(c.set_fetcher(fake.clone()));
        c
    }

    #[tokio::test]
    async fn a_document_is_cached_and_an_unknown_kid_refetches_at_most_once_per_interval() {
        let (a, b) = (p256_jwk("a"), p256_jwk("b"));
        let fake = Arc::new(Fake {
            doc: Mutex::new(set(&[&a])),
            fetches: AtomicUsize::new(0),
        });
        let c = cache(&fake);
        let t0 = Instant::now();
        let es = Algorithm::ES256;
        assert!(c.key_at(URL, es, Some("a"), t0).await.is_ok());
        assert!(
            c.key_at(URL, es, Some("a"), t0 + Duration::from_secs(10))
                .await
                .is_ok()
        );
        assert_eq!(fake.fetches.load(Ordering::SeqCst), 1, "cached");

        // A forged kid: one refetch once the interval has passed, then none until the next.
        let t1 = t0 + Duration::from_secs(40);
        assert_eq!(
            c.key_at(URL, es, Some("forged"), t1).await.err(),
            Some(JwksError::UnknownKey)
        );
        for s in 1..20 {
            let at = t1 + Duration::from_secs(s);
            assert_eq!(
                c.key_at(URL, es, Some("forged"), at).await.err(),
                Some(JwksError::UnknownKey)
            );
        }
        assert_eq!(fake.fetches.load(Ordering::SeqCst), 2, "rate-limited");
        // The known key still verifies meanwhile, from the cache.
        assert!(
            c.key_at(URL, es, Some("a"), t1 + Duration::from_secs(5))
                .await
                .is_ok()
        );

        // A rotation: key b appears; the next refetch allowed finds it.
        *fake.doc.lock().unwrap() = set(&[&b]);
        let t2 = t1 + Duration::from_secs(31);
        assert!(c.key_at(URL, es, Some("b"), t2).await.is_ok());
        assert_eq!(fake.fetches.load(Ordering::SeqCst), 3);
        // Key a was removed from the document fetched: it no longer verifies.
        assert_eq!(
            c.key_at(URL, es, Some("a"), t2 + Duration::from_secs(1))
                .await
                .err(),
            Some(JwksError::UnknownKey)
        );
    }

    #[tokio::test]
    async fn a_stale_document_is_fetched_again_and_an_unreachable_url_is_refused() {
        let a = p256_jwk("a");
        let fake = Arc::new(Fake {
            doc: Mutex::new(set(&[&a])),
            fetches: AtomicUsize::new(0),
        });
        let c = cache(&fake);
        let t0 = Instant::now();
        let es = Algorithm::ES256;
        assert!(c.key_at(URL, es, None, t0).await.is_ok());
        *fake.doc.lock().unwrap() = Err("connection refused".into());
        let stale = t0 + Duration::from_secs(301);
        assert_eq!(
            c.key_at(URL, es, None, stale).await.err(),
            Some(JwksError::Unavailable("connection refused".into()))
        );
        // Refused again without another fetch until the interval has passed.
        assert!(matches!(
            c.key_at(URL, es, None, stale + Duration::from_secs(1))
                .await,
            Err(JwksError::Unavailable(_))
        ));
        assert_eq!(fake.fetches.load(Ordering::SeqCst), 2);
        // Not a JWK Set.
        *fake.doc.lock().unwrap() = Ok("<html>".into());
        assert!(matches!(
            c.key_at(URL, es, None, stale + Duration::from_secs(31))
                .await,
            Err(JwksError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn without_a_fetcher_or_with_a_plain_http_url_nothing_is_fetched() {
        let c = JwksCache::new(JwksSettings::default());
        assert!(matches!(
            c.key(URL, Algorithm::ES256, None).await,
            Err(JwksError::Unavailable(_))
        ));
        let fake = Arc::new(Fake {
            doc: Mutex::new(set(&[])),
            fetches: AtomicUsize::new(0),
        });
        let c = cache(&fake);
        assert!(matches!(
            c.key("http://127.0.0.1:1/jwks", Algorithm::ES256, None)
                .await,
            Err(JwksError::Unavailable(_))
        ));
        assert_eq!(fake.fetches.load(Ordering::SeqCst), 0);
    }
}
