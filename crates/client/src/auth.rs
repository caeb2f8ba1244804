//! Authentication: the API token header, or OAuth access tokens kept fresh by refreshing.
//!
//! Only one refresh is in flight at a time (others wait and reuse its result). A rotated refresh
//! token is handed to `on_rotate` before anything else uses it, so the caller can persist it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use url::Url;

use crate::config::{Backoff, Credentials, OAuthCredentials, RotateCallback};
use crate::error::{ClientError, truncate};
use crate::page::error_text;

pub(crate) enum Auth {
    ApiToken(SecretString),
    OAuth(Box<OAuth>),
}

pub(crate) struct OAuth {
    client_id: String,
    client_secret: SecretString,
    token_url: Url,
    on_rotate: Option<RotateCallback>,
    refresh_token: Mutex<SecretString>,
    access: RwLock<Option<AccessToken>>,
    refresh_lock: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    /// `api_domain` from the token response, used instead of a generic base URL.
    api_base: RwLock<Option<Url>>,
    replace_base: bool,
}

#[derive(Clone)]
struct AccessToken {
    token: SecretString,
    refresh_at: Instant,
    generation: u64,
}

/// The header to send, plus which access token it was (to invalidate exactly that one on 401).
pub(crate) struct AuthHeader {
    pub name: HeaderName,
    pub value: HeaderValue,
    pub generation: u64,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: SecretString,
    #[serde(default)]
    refresh_token: Option<SecretString>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    api_domain: Option<String>,
}

/// The host base URLs use when the company is not known; OAuth's `api_domain` replaces it.
const GENERIC_HOSTS: &[&str] = &["api.pipedrive.com", "api-proxy.pipedrive.com"];

fn sensitive(value: &str) -> Result<HeaderValue, ClientError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| ClientError::InvalidRequest {
        message: "credential contains characters not allowed in an HTTP header".into(),
    })?;
    v.set_sensitive(true);
    Ok(v)
}

impl Auth {
    pub(crate) fn new(credentials: Credentials, base_url: &Url) -> Auth {
        match credentials {
            Credentials::ApiToken(t) => Auth::ApiToken(t),
            Credentials::OAuth(o) => Auth::OAuth(Box::new(OAuth::new(o, base_url))),
        }
    }

    pub(crate) fn is_oauth(&self) -> bool {
        matches!(self, Auth::OAuth(_))
    }

    /// Base URL override learned from OAuth's `api_domain`.
    pub(crate) fn api_base(&self) -> Option<Url> {
        match self {
            Auth::ApiToken(_) => None,
            Auth::OAuth(o) => o.api_base.read().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    pub(crate) async fn header(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Result<AuthHeader, ClientError> {
        match self {
            Auth::ApiToken(t) => Ok(AuthHeader {
                name: HeaderName::from_static("x-api-token"),
                value: sensitive(t.expose_secret())?,
                generation: 0,
            }),
            Auth::OAuth(o) => {
                let t = o.access_token(http, timeout).await?;
                Ok(AuthHeader {
                    name: AUTHORIZATION,
                    value: sensitive(&format!("Bearer {}", t.token.expose_secret()))?,
                    generation: t.generation,
                })
            }
        }
    }

    /// After a 401: forget the access token that was rejected so the next call refreshes.
    /// Returns false when there is nothing to refresh (API token).
    pub(crate) fn invalidate(&self, generation: u64) -> bool {
        match self {
            Auth::ApiToken(_) => false,
            Auth::OAuth(o) => {
                let mut a = o.access.write().unwrap_or_else(|e| e.into_inner());
                if a.as_ref().is_some_and(|t| t.generation == generation) {
                    *a = None;
                }
                true
            }
        }
    }

    /// Removes any credential from text that came from a server before it goes into an error.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        let mut hide = |secret: &str| {
            if secret.len() >= 6 && out.contains(secret) {
                out = out.replace(secret, "[REDACTED]");
            }
        };
        match self {
            Auth::ApiToken(t) => hide(t.expose_secret()),
            Auth::OAuth(o) => {
                hide(o.client_secret.expose_secret());
                hide(
                    o.refresh_token
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .expose_secret(),
                );
                if let Some(a) = o.access.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
                    hide(a.token.expose_secret());
                }
            }
        }
        out
    }
}

impl OAuth {
    fn new(c: OAuthCredentials, base_url: &Url) -> OAuth {
        let replace_base = base_url
            .host_str()
            .is_some_and(|h| GENERIC_HOSTS.contains(&h));
        OAuth {
            client_id: c.client_id,
            client_secret: c.client_secret,
            token_url: c.token_url,
            on_rotate: c.on_rotate,
            refresh_token: Mutex::new(c.refresh_token),
            access: RwLock::new(None),
            refresh_lock: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            api_base: RwLock::new(None),
            replace_base,
        }
    }

    fn fresh(&self) -> Option<AccessToken> {
        let a = self.access.read().unwrap_or_else(|e| e.into_inner());
        a.as_ref()
            .filter(|t| t.refresh_at > Instant::now())
            .cloned()
    }

    async fn access_token(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Result<AccessToken, ClientError> {
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let _one_at_a_time = self.refresh_lock.lock().await;
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        self.refresh(http, timeout).await
    }

    /// Refreshes with a few retries for network trouble and 5xx; an OAuth rejection fails at once.
    async fn refresh(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Result<AccessToken, ClientError> {
        const ATTEMPTS: u32 = 4;
        let backoff = Backoff::default();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.refresh_once(http, timeout).await {
                Ok(t) => return Ok(t),
                Err(e) if e.is_retryable() && attempt < ATTEMPTS => {
                    let delay = backoff.delay(attempt);
                    tracing::warn!(attempt, error = %e, ?delay, "OAuth token refresh failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) if e.is_retryable() => {
                    return Err(ClientError::RetriesExhausted {
                        attempts: attempt,
                        last: Box::new(e),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn refresh_once(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Result<AccessToken, ClientError> {
        let path = self.token_url.path().to_owned();
        let refresh_token = self
            .refresh_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.client_id,
            self.client_secret.expose_secret()
        ));
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
        ];
        let started = Instant::now();
        let response = http
            .post(self.token_url.clone())
            .header(AUTHORIZATION, sensitive(&format!("Basic {basic}"))?)
            .form(&form)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| crate::error::transport_error(&path, e))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| crate::error::transport_error(&path, e))?;
        tracing::debug!(method = "POST", path = %path, status = status.as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "OAuth token refresh");

        if status.is_server_error() || status.as_u16() == 429 {
            return Err(ClientError::Server {
                path,
                status: status.as_u16(),
                message: self.scrub_body(&body),
            });
        }
        if !status.is_success() {
            let text = self.scrub_body(&body);
            let lower = text.to_ascii_lowercase();
            let message = if lower.contains("invalid grant") || lower.contains("invalid_grant") {
                "the OAuth refresh token was rejected (invalid grant: expired after 60 days unused, revoked, or already rotated): re-authorise the app in Pipedrive and update source.oauth.refresh_token".to_owned()
            } else if lower.contains("invalid client") || lower.contains("invalid_client") {
                "the OAuth client was rejected (invalid client): check source.oauth.client_id and client_secret".to_owned()
            } else {
                format!(
                    "OAuth token refresh failed (HTTP {}): {text}; re-authorise the app and update source.oauth.refresh_token if this persists",
                    status.as_u16()
                )
            };
            return Err(ClientError::OAuth { message });
        }

        // Never echo this body: it holds tokens. serde errors can quote values, so only the
        // position is reported.
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| ClientError::OAuth {
                message: format!(
                    "the OAuth token response could not be decoded ({:?} error at line {} column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            })?;

        if let Some(new) = parsed.refresh_token.filter(|n| {
            !n.expose_secret().is_empty() && n.expose_secret() != refresh_token.expose_secret()
        }) {
            // Keep the new token in memory even if saving fails: the old one may be dead now.
            *self.refresh_token.lock().unwrap_or_else(|e| e.into_inner()) = new.clone();
            if let Some(on_rotate) = &self.on_rotate {
                on_rotate(&new).map_err(|e| ClientError::OAuth {
                    message: format!(
                        "Pipedrive rotated the OAuth refresh token but saving it failed ({e}); the new token was not stored, so re-authorise and update source.oauth.refresh_token if the next run is rejected"
                    ),
                })?;
            }
            tracing::info!("OAuth refresh token rotated and handed to the caller");
        }

        if self.replace_base
            && let Some(domain) = parsed.api_domain.as_deref()
        {
            match Url::parse(domain) {
                Ok(u) if matches!(u.scheme(), "https" | "http") && u.host_str().is_some() => {
                    tracing::debug!(api_domain = %u, "using the OAuth api_domain as base URL");
                    *self.api_base.write().unwrap_or_else(|e| e.into_inner()) = Some(u);
                }
                _ => tracing::warn!(
                    api_domain = %truncate(domain, 100),
                    "ignoring an api_domain that is not a URL"
                ),
            }
        }

        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600).max(1));
        // Refresh a minute early (or halfway, for very short lifetimes).
        let early = Duration::from_secs(60).min(lifetime / 2);
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let token = AccessToken {
            token: parsed.access_token,
            refresh_at: Instant::now() + lifetime - early,
            generation,
        };
        *self.access.write().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        Ok(token)
    }

    fn scrub_body(&self, body: &[u8]) -> String {
        let text = error_text(body);
        let mut out = text;
        for secret in [
            self.client_secret.expose_secret().to_owned(),
            self.refresh_token
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .expose_secret()
                .to_owned(),
        ] {
            if secret.len() >= 6 {
                out = out.replace(&secret, "[REDACTED]");
            }
        }
        out
    }
}
