//! The HTTP side of registered JWKS URLs: fetches a system's key document for the identity
//! service's cache (`carerecord_identity::jwks`), which decides what may be fetched and when.
//! Here: a timeout, no redirects (a redirect could lead anywhere, the rules were checked on the
//! registered URL), and a size limit enforced while reading, so a hostile server cannot make
//! carerecord hold an endless body.

use std::time::Duration;

use async_trait::async_trait;
use carerecord_identity::jwks::{FETCH_TIMEOUT, JwksFetcher, MAX_JWKS_BYTES};

/// Fetches JWKS documents over HTTPS (and plain HTTP, which the identity service allows only
/// on loopback when configured to).
#[derive(Debug, Clone)]
pub struct HttpJwksFetcher {
    client: reqwest::Client,
}

impl HttpJwksFetcher {
    pub fn new() -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("carerecord/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("the JWKS HTTP client: {e}"))?;
        Ok(HttpJwksFetcher { client })
    }
}

#[async_trait]
impl JwksFetcher for HttpJwksFetcher {
    async fn fetch(&self, url: &str) -> Result<String, String> {
        let mut resp = self
            .client
            .get(url)
            .header(
                reqwest::header::ACCEPT,
                "application/json, application/jwk-set+json",
            )
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "the JWKS URL did not answer in time".to_owned()
                } else {
                    "the JWKS URL could not be reached".to_owned()
                }
            })?;
        if !resp.status().is_success() {
            return Err(format!("the JWKS URL answered {}", resp.status().as_u16()));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err("the JWKS document is too large".into());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|_| "the JWKS document could not be read".to_owned())?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err("the JWKS document is too large".into());
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| "the JWKS document is not UTF-8 text".into())
    }
}
