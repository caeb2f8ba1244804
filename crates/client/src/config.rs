//! Client configuration. `Debug` is written by hand so secrets and callbacks never print.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

/// Called with a rotated OAuth refresh token; must persist it before returning.
pub type RotateCallback = Arc<dyn Fn(&SecretString) -> std::io::Result<()> + Send + Sync>;

/// Everything needed to build a [`crate::Client`].
#[derive(Clone)]
pub struct ClientConfig {
    /// Company host (`https://mycompany.pipedrive.com`) or a simulator
    /// (`http://127.0.0.1:PORT`); request paths are appended to its path.
    pub base_url: url::Url,
    pub credentials: Credentials,
    /// Whole-request timeout, body included.
    pub request_timeout: Duration,
    /// First try plus retries.
    pub max_attempts: u32,
    /// Cap on tokens this process may spend; the request that would exceed it is not sent.
    pub max_tokens: Option<u64>,
    /// Share of the company's daily budget (percent) a run leaves for the company's other
    /// integrations: the request that would dip into it is not sent.
    pub budget_reserve_percent: u8,
    pub user_agent: String,
}

impl ClientConfig {
    /// A config with the defaults: 60 s timeout, 8 attempts, no token cap, no reserve.
    pub fn new(base_url: url::Url, credentials: Credentials) -> ClientConfig {
        ClientConfig {
            base_url,
            credentials,
            request_timeout: Duration::from_secs(60),
            max_attempts: 8,
            max_tokens: None,
            budget_reserve_percent: 0,
            user_agent: default_user_agent(),
        }
    }
}

/// `pipedrive-sync/<version>`.
pub fn default_user_agent() -> String {
    format!("pipedrive-sync/{}", env!("CARGO_PKG_VERSION"))
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url.as_str())
            .field("credentials", &self.credentials)
            .field("request_timeout", &self.request_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("max_tokens", &self.max_tokens)
            .field("budget_reserve_percent", &self.budget_reserve_percent)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

/// How requests authenticate.
#[derive(Clone)]
pub enum Credentials {
    /// Personal API token, sent only in the `x-api-token` header.
    ApiToken(SecretString),
    /// OAuth 2.0 app installation; access tokens are obtained by refreshing.
    OAuth(OAuthCredentials),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::ApiToken(_) => f.write_str("ApiToken([REDACTED])"),
            Credentials::OAuth(o) => f.debug_tuple("OAuth").field(o).finish(),
        }
    }
}

/// OAuth app credentials and the current refresh token.
#[derive(Clone)]
pub struct OAuthCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
    pub refresh_token: SecretString,
    /// `https://oauth.pipedrive.com/oauth/token`, or the simulator's `{base}/oauth/token`.
    pub token_url: url::Url,
    /// Called with the rotated refresh token before it is used further, so the caller can persist it atomically.
    pub on_rotate: Option<RotateCallback>,
}

impl fmt::Debug for OAuthCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .field("refresh_token", &"[REDACTED]")
            .field("token_url", &self.token_url.as_str())
            .field("on_rotate", &self.on_rotate.as_ref().map(|_| "<callback>"))
            .finish()
    }
}

/// Retry backoff: jittered exponential between `base` and `max`. Exposed so tests (and
/// impatient tools) can shorten it; the defaults suit the real API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// Delay before retry number `retry` (1-based): `base·2^(retry-1)` capped at `max`, then
    /// "equal jitter" (uniform in the upper half) so concurrent streams do not retry in step.
    pub fn delay(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(20);
        let full = self.base.saturating_mul(1u32 << exp).min(self.max);
        let half = full / 2;
        let jitter = rand::random_range(0.0..=1.0f64);
        half + half.mul_f64(jitter)
    }
}
