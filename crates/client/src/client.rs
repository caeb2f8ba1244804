//! The client: one GET with pacing, budget checks and retries; lazy page streams.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures::Stream;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use tokio::time::Instant;
use url::Url;

use crate::auth::Auth;
use crate::budget::{Budget, BudgetSnapshot, next_utc_midnight};
use crate::config::{Backoff, ClientConfig};
use crate::error::{ClientError, transport_error};
use crate::limiter::{BurstHeaders, RateLimiter};
use crate::overlap::Overlap;
use crate::page::{Page, PagePosition, Paging, Request, error_text, paging_query, parse_page};
use crate::stats::{ClientStats, Event, RequestTimeline, Stats};

/// How long every request fails fast with `Blocked` after the edge returned an HTML 403.
const BLOCKED_COOL_DOWN: Duration = Duration::from_secs(60);
/// A burst 429 asking us to wait longer than this is taken as the daily budget running out.
const LONGEST_BURST_WAIT: Duration = Duration::from_secs(120);

/// Pipedrive REST client. Cheap to clone; all clones share one rate limiter, budget and stats.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: Url,
    auth: Auth,
    limiter: RateLimiter,
    /// Shared by the clients of one company's tokens (see [`Client::for_same_company`]).
    budget: Arc<Budget>,
    stats: Stats,
    max_attempts: u32,
    request_timeout: Duration,
    backoff: Backoff,
    blocked_until: Mutex<Option<Instant>>,
    /// Set when a request used all its attempts without ever connecting to the host; cleared
    /// by any response. While set, a connection failure is not retried, so a sync against a
    /// host that is down ends after one request's retries instead of after every stream's.
    host_down: AtomicBool,
    /// Set by the first response of any kind: until then a failure to connect is more likely
    /// a wrong address than a passing outage, and is not retried for a minute.
    answered: AtomicBool,
}

/// Attempts of a request whose connection fails before the host has ever answered.
const FIRST_CONTACT_ATTEMPTS: u32 = 2;

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url.as_str())
            .field(
                "auth",
                &if self.inner.auth.is_oauth() {
                    "OAuth([REDACTED])"
                } else {
                    "ApiToken([REDACTED])"
                },
            )
            .field("max_attempts", &self.inner.max_attempts)
            .field("request_timeout", &self.inner.request_timeout)
            .finish_non_exhaustive()
    }
}

/// Result of one attempt that failed, plus whether the server charged for it.
struct Failure {
    error: ClientError,
    /// On 401 with OAuth: which access token was rejected.
    rejected_generation: Option<u64>,
    /// No connection to the host could be made (refused, unroutable, connect timeout).
    connect_failed: bool,
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Failure {
        Failure {
            error,
            rejected_generation: None,
            connect_failed: false,
        }
    }
}

/// Whether the host answered with something other than HTTP (an SSH banner, a database's
/// greeting): hyper's errors for a response that is not HTTP/1, or for bytes sent before the
/// request was.
fn speaks_no_http(error: &ClientError) -> bool {
    matches!(error, ClientError::Network { detail, .. }
        if ["invalid HTTP version", "HTTP/0.9", "invalid HTTP status", "invalid status-code", "received unexpected message from connection"]
            .iter()
            .any(|text| detail.contains(text)))
}

fn header<T: std::str::FromStr>(h: &HeaderMap, name: &str) -> Option<T> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn seconds(h: &HeaderMap, name: &str) -> Option<Duration> {
    let s: f64 = header(h, name)?;
    (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(86_400.0)))
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    if let Some(d) = seconds(h, RETRY_AFTER.as_str()) {
        return Some(d);
    }
    let text = h.get(RETRY_AFTER)?.to_str().ok()?;
    let at = chrono::DateTime::parse_from_rfc2822(text.trim()).ok()?;
    (at.with_timezone(&Utc) - Utc::now()).to_std().ok()
}

/// Follows redirects only within the same host and scheme: `x-api-token` is not a header
/// reqwest knows to strip, so a cross-host redirect would hand the token to another host.
fn same_host_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().cloned();
        let same = first.is_some_and(|f| {
            f.host_str() == attempt.url().host_str()
                && f.port_or_known_default() == attempt.url().port_or_known_default()
                && f.scheme() == attempt.url().scheme()
        });
        if same && attempt.previous().len() < 5 {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

impl Client {
    /// Builds a client with the default retry backoff.
    pub fn new(config: ClientConfig) -> Result<Client, ClientError> {
        Client::with_backoff(config, Backoff::default())
    }

    /// Builds a client with a custom retry backoff (tests use short ones).
    pub fn with_backoff(config: ClientConfig, backoff: Backoff) -> Result<Client, ClientError> {
        if !matches!(config.base_url.scheme(), "http" | "https") {
            return Err(ClientError::InvalidRequest {
                message: format!("base_url must be http(s), got {}", config.base_url.scheme()),
            });
        }
        let http = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(30)))
            .redirect(same_host_redirects())
            .build()
            .map_err(|e| ClientError::InvalidRequest {
                message: format!("could not build the HTTP client: {}", e.without_url()),
            })?;
        let auth = Auth::new(config.credentials, &config.base_url);
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base_url: config.base_url,
                auth,
                limiter: RateLimiter::new(),
                budget: Arc::new(Budget::new(
                    config.max_tokens,
                    config.budget_reserve_percent,
                )),
                stats: Stats::default(),
                max_attempts: config.max_attempts.max(1),
                request_timeout: config.request_timeout,
                backoff,
                blocked_until: Mutex::new(None),
                host_down: AtomicBool::new(false),
                answered: AtomicBool::new(false),
            }),
        })
    }

    /// A client for another token of the same company: its own burst window (Pipedrive limits
    /// bursts per token) and this client's daily budget and token cap (the budget is the
    /// company's).
    pub fn for_same_company(&self, config: ClientConfig) -> Result<Client, ClientError> {
        let mut client = Client::new(config)?;
        if let Some(inner) = Arc::get_mut(&mut client.inner) {
            inner.budget = Arc::clone(&self.inner.budget);
        }
        Ok(client)
    }

    /// One request with retries and pacing, at `request.start`. Writes are retried too: the
    /// connector's only writes (its webhooks) are found again by name, so a repeat is harmless.
    pub async fn send(&self, request: &Request) -> Result<Page, ClientError> {
        self.inner.fetch(request, &request.start).await
    }

    /// Streams pages lazily (one request in flight per stream; the next request is sent only
    /// after the consumer polls), starting at `request.start`. The stream ends after the last
    /// page or after the first error.
    pub fn pages(
        &self,
        request: Request,
    ) -> impl Stream<Item = Result<Page, ClientError>> + Send + use<> {
        let inner = Arc::clone(&self.inner);
        let start = Some(request.start.clone());
        let offset_limit = match request.paging {
            Paging::Offset { limit } => limit,
            _ => 0,
        };
        futures::stream::unfold(
            (inner, request, start, Overlap::new(offset_limit)),
            |(inner, request, position, mut overlap)| async move {
                let position = position?;
                let asked = overlap.request_position(&position);
                match inner.fetch(&request, &asked).await {
                    Ok(mut page) => {
                        overlap.splice(&mut page);
                        let next = page.next.clone();
                        Some((Ok(page), (inner, request, next, overlap)))
                    }
                    Err(e) => Some((Err(e), (inner, request, None, overlap))),
                }
            },
        )
    }

    /// The company's API address: clients with the same one belong to the same company.
    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    /// Cumulative counters.
    pub fn stats(&self) -> ClientStats {
        self.inner.stats.snapshot()
    }

    /// Requests and 429s per second since the client was built.
    pub fn timeline(&self) -> RequestTimeline {
        self.inner.stats.timeline()
    }

    /// Keeps `tokens` of the company's daily budget above its reserve unspent until called
    /// again (0 releases them): a run stopped at the reserve pays for the estimate of what it
    /// has left with them.
    pub fn hold_above_reserve(&self, tokens: u64) {
        self.inner.budget.hold(tokens);
    }

    /// What is known about the burst limit and the daily budget.
    pub fn budget(&self) -> BudgetSnapshot {
        self.inner.budget.snapshot(self.inner.limiter.limit())
    }
}

impl Inner {
    async fn fetch(&self, request: &Request, position: &PagePosition) -> Result<Page, ClientError> {
        let paging = paging_query(request, position)?;
        if request
            .query
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("api_token"))
        {
            return Err(ClientError::InvalidRequest {
                message: format!(
                    "{}: credentials must not be passed as query parameters",
                    request.path
                ),
            });
        }
        let mut attempt = 0u32;
        let mut refreshed = false;
        let mut never_connected = true;
        loop {
            attempt += 1;
            let failure = match self.attempt(request, position, &paging, attempt).await {
                Ok(page) => return Ok(page),
                Err(f) => Failure {
                    error: f.error.map_text(&|t| self.auth.scrub(t)),
                    ..f
                },
            };
            never_connected &= failure.connect_failed;
            // One refresh-and-retry on a 401 with OAuth: the access token may have been revoked
            // or expired early.
            if let Some(generation) = failure.rejected_generation
                && !refreshed
                && self.auth.invalidate(generation)
            {
                refreshed = true;
                tracing::warn!(path = %request.path, "access token rejected; refreshing it once");
                self.stats.record(&request.path, Event::Retry);
                continue;
            }
            let error = failure.error;
            if !error.is_retryable() {
                return Err(error);
            }
            // A refused connection, or a server that does not speak HTTP, before anything at
            // this address ever answered: the address is wrong, not the network.
            if !self.answered.load(Ordering::Relaxed)
                && (speaks_no_http(&error) || never_connected && attempt >= FIRST_CONTACT_ATTEMPTS)
            {
                let mut address = self.base_url.clone();
                address.set_query(None);
                let _ = address.set_password(None);
                let _ = address.set_username("");
                return Err(ClientError::NothingAnswers {
                    address: address.to_string(),
                    last: Box::new(error),
                });
            }
            if never_connected && self.host_down.load(Ordering::Relaxed) {
                return Err(ClientError::Unreachable {
                    last: Box::new(error),
                });
            }
            if attempt >= self.max_attempts {
                if never_connected {
                    self.host_down.store(true, Ordering::Relaxed);
                }
                return Err(ClientError::RetriesExhausted {
                    attempts: attempt,
                    last: Box::new(error),
                });
            }
            self.stats.record(&request.path, Event::Retry);
            // 429s already paused the shared limiter; everything else backs off on its own.
            let delay = match error {
                ClientError::RateLimited { .. } => Duration::ZERO,
                _ => self.backoff.delay(attempt),
            };
            tracing::warn!(path = %request.path, attempt, max_attempts = self.max_attempts, ?delay, error = %error, "request failed; retrying");
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
    }

    fn blocked(&self) -> Option<Instant> {
        let b = self.blocked_until.lock().unwrap_or_else(|e| e.into_inner());
        b.filter(|t| *t > Instant::now())
    }

    fn url(&self, request: &Request, paging: &[(&'static str, String)]) -> Url {
        let mut url = self
            .auth
            .api_base()
            .unwrap_or_else(|| self.base_url.clone());
        let path = format!(
            "{}/{}",
            url.path().trim_end_matches('/'),
            request.path.trim_start_matches('/')
        );
        url.set_path(&path);
        url.set_query(None);
        if !request.query.is_empty() || !paging.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in &request.query {
                q.append_pair(k, v);
            }
            for (k, v) in paging {
                q.append_pair(k, v);
            }
        }
        url
    }

    async fn attempt(
        &self,
        request: &Request,
        position: &PagePosition,
        paging: &[(&'static str, String)],
        attempt: u32,
    ) -> Result<Page, Failure> {
        let path = request.path.as_str();
        if self.blocked().is_some() {
            return Err(ClientError::Blocked {
                path: path.to_owned(),
            }
            .into());
        }
        // Fail fast before waiting for a slot, and again after (the wait may have been long).
        self.budget
            .settle(self.budget.reserve(request.token_cost)?, false);
        let auth = self
            .auth
            .header(&self.http, self.request_timeout)
            .await
            .map_err(Failure::from)?;
        let url = self.url(request, paging);
        let permit = self.limiter.acquire().await;
        if self.blocked().is_some() {
            return Err(ClientError::Blocked {
                path: path.to_owned(),
            }
            .into());
        }
        let reservation = self.budget.reserve(request.token_cost)?;
        self.stats.record(path, Event::Request);

        let started = Instant::now();
        let mut call = self
            .http
            .request(request.method.clone(), url)
            .header(auth.name, auth.value)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = &request.body {
            call = call.json(body);
        }
        let sent = call.send().await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                drop(permit);
                self.budget.settle(reservation, false);
                let connect_failed = e.is_connect();
                let error = transport_error(path, e);
                tracing::debug!(method = %request.method, path, attempt, elapsed_ms = started.elapsed().as_millis() as u64, error = %error, "request failed");
                return Err(Failure {
                    connect_failed,
                    ..error.into()
                });
            }
        };
        self.host_down.store(false, Ordering::Relaxed);
        self.answered.store(true, Ordering::Relaxed);
        let status = response.status();
        let headers = response.headers().clone();
        self.limiter.observe(
            permit.sent_at,
            BurstHeaders {
                limit: header(&headers, "x-ratelimit-limit"),
                remaining: header(&headers, "x-ratelimit-remaining"),
                reset: seconds(&headers, "x-ratelimit-reset"),
            },
        );
        drop(permit);
        let daily_remaining: Option<u64> = header(&headers, "x-daily-ratelimit-token-remaining");
        self.budget.observe(
            header(&headers, "x-daily-ratelimit-token-limit"),
            daily_remaining,
        );
        // The server charges whatever it processed for a known company: everything except
        // failed authentication, requests it turned away (429) and its own 5xx failures.
        let charged = status != StatusCode::UNAUTHORIZED
            && status != StatusCode::TOO_MANY_REQUESTS
            && !status.is_server_error();
        let spent = self.budget.settle(reservation, charged);
        if spent > 0 {
            self.stats.record(path, Event::Spent(spent));
        }

        let body = response.bytes().await;
        tracing::debug!(
            method = %request.method,
            path,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            attempt,
            "request"
        );
        let body = body.map_err(|e| Failure::from(transport_error(path, e)))?;

        if status.is_success() {
            return parse_page(&body, request, position).map_err(Failure::from);
        }
        Err(self.status_error(status, &headers, &body, path, auth.generation, attempt))
    }

    fn status_error(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        path: &str,
        generation: u64,
        attempt: u32,
    ) -> Failure {
        let text = || self.auth.scrub(&error_text(body));
        let path = path.to_owned();
        let error = match status.as_u16() {
            400 => ClientError::BadRequest {
                message: format!(
                    "Pipedrive rejected the request to {path} (HTTP 400): {}",
                    text()
                ),
            },
            401 => {
                let message = if self.auth.is_oauth() {
                    format!(
                        "the OAuth access token was rejected (HTTP 401) on {path} even after a refresh: re-authorise the app and update source.oauth.refresh_token"
                    )
                } else {
                    format!(
                        "the API token was rejected (HTTP 401) on {path}: check PIPEDRIVE_API_TOKEN / source.api_token; find it in Pipedrive under Personal preferences → API"
                    )
                };
                return Failure {
                    error: ClientError::Unauthorized { message },
                    rejected_generation: self.auth.is_oauth().then_some(generation),
                    connect_failed: false,
                };
            }
            402 => ClientError::PaymentRequired { path },
            403 if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() => {
                ClientError::Forbidden {
                    message: format!(
                        "Pipedrive refused access to {path} (HTTP 403): {}; the user lacks permission or the plan does not include it",
                        text()
                    ),
                }
            }
            403 => {
                // Not JSON: the edge network's block page. Hammering would extend the block, so
                // every request fails fast for a while.
                *self.blocked_until.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(Instant::now() + BLOCKED_COOL_DOWN);
                ClientError::Blocked { path }
            }
            404 => ClientError::NotFound { path },
            410 => ClientError::Gone { path },
            429 => {
                self.stats.record(&path, Event::Response429);
                return self.too_many(headers, &text(), path, attempt).into();
            }
            s if status.is_server_error() => ClientError::Server {
                path,
                status: s,
                message: text(),
            },
            s => ClientError::Unexpected {
                status: s,
                path,
                message: text(),
            },
        };
        error.into()
    }

    /// Tells a burst 429 (pause everyone, retry) from a daily-budget 429 (stop).
    fn too_many(&self, headers: &HeaderMap, text: &str, path: String, attempt: u32) -> ClientError {
        let wait = retry_after(headers).or_else(|| seconds(headers, "x-ratelimit-reset"));
        let daily_header = header::<u64>(headers, "x-daily-ratelimit-token-remaining") == Some(0);
        let lower = text.to_ascii_lowercase();
        let daily_text = lower.contains("daily") || lower.contains("token budget");
        let long_wait = wait.is_some_and(|w| w > LONGEST_BURST_WAIT);
        if daily_header || daily_text || long_wait {
            let now = Utc::now();
            let resets_at = match wait.filter(|w| *w > LONGEST_BURST_WAIT) {
                Some(w) => {
                    chrono::Duration::from_std(w).map_or(next_utc_midnight(now), |d| now + d)
                }
                None => next_utc_midnight(now),
            };
            self.budget.exhaust(resets_at);
            tracing::warn!(path, %resets_at, "daily token budget exhausted");
            return ClientError::DailyBudgetExhausted { resets_at };
        }
        let pause = wait.unwrap_or_else(|| self.backoff.delay(attempt));
        self.limiter.pause(Instant::now() + pause);
        ClientError::RateLimited {
            path,
            retry_after: wait,
        }
    }
}
