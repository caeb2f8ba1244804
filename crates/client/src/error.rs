//! Errors returned by the client, classified so the engine can decide what to do without
//! parsing messages: stop (auth), skip the stream (not available), retry later, or give up.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How the engine should treat an error that reached it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Credentials or account problem: nothing will work until the user acts.
    Auth,
    /// Try again later (budget exhausted, server or network trouble that outlasted the retries).
    Temporary,
    /// The request itself is wrong or the response cannot be understood; retrying will not help.
    Permanent,
    /// The endpoint is plan- or permission-gated for this account: skip that stream.
    NotAvailable,
}

/// Every failure of a request. Messages name the request path; they never contain the API
/// token, client secret, refresh token or access token (none of those travel in URLs, and
/// text echoed from servers is scrubbed of them).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// HTTP 401: the credentials were rejected.
    #[error("{message}")]
    Unauthorized { message: String },
    /// HTTP 402: the company account is not open (trial expired, unpaid, deleted).
    #[error(
        "Pipedrive answered 402 Payment Required for {path}: the company account is not open (trial expired or unpaid)"
    )]
    PaymentRequired { path: String },
    /// HTTP 403 with a JSON body: missing permission or a plan limit.
    #[error("{message}")]
    Forbidden { message: String },
    /// HTTP 403 with a non-JSON (HTML) body: the edge network blocked us.
    #[error(
        "Pipedrive's edge blocked the client after repeated 429s (HTTP 403 with an HTML page) on {path}; wait and retry"
    )]
    Blocked { path: String },
    /// HTTP 404.
    #[error("Pipedrive answered 404 Not Found for {path}")]
    NotFound { path: String },
    /// HTTP 410: the resource was removed for good.
    #[error("Pipedrive answered 410 Gone for {path}: the resource is permanently unavailable")]
    Gone { path: String },
    /// HTTP 400, with the API's error text.
    #[error("{message}")]
    BadRequest { message: String },
    /// The company's daily token budget is spent (429 from the server, or known to be too low
    /// for the next request, in which case nothing was sent).
    #[error(
        "the company's daily Pipedrive API token budget is exhausted; it resets at {resets_at} (see Company settings → API usage)"
    )]
    DailyBudgetExhausted { resets_at: DateTime<Utc> },
    /// The configured `max_tokens` cap would be exceeded by the next request; nothing was sent.
    #[error(
        "the configured token cap of {cap} would be exceeded ({spent} spent so far); raise max_tokens or wait for the next run"
    )]
    TokenCapReached { cap: u64, spent: u64 },
    /// The next request would dip into the share of the daily budget the run leaves for the
    /// company's other integrations; nothing was sent.
    #[error(
        "the company has {remaining} Pipedrive API tokens left today and this run leaves {keep} ({percent}% of the daily budget) for its other integrations{}; the next run after {resets_at} continues where this one stopped (lower source.budget_reserve_percent to spend more)",
        held_note(.held)
    )]
    BudgetReserveReached {
        remaining: u64,
        keep: u64,
        /// Tokens above the reserve held for estimating what the stopped run leaves.
        held: u64,
        percent: u8,
        resets_at: DateTime<Utc>,
    },
    /// A retryable failure repeated until `max_attempts` ran out.
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        attempts: u32,
        last: Box<ClientError>,
    },
    /// A connection failure not retried, because an earlier request of this run already
    /// exhausted its attempts without ever reaching the host (see `Client::get`).
    #[error(
        "{last}; not retried, since an earlier request already gave up connecting after every attempt: check source.base_url (or source.company_domain) and the network, then run again"
    )]
    Unreachable { last: Box<ClientError> },
    /// Nothing at the configured address ever answered HTTP: the connection was refused, or
    /// the server speaks another protocol. Not retried for long: a wrong address stays wrong.
    #[error(
        "nothing answers HTTP at {address} ({last}): check source.base_url (or source.company_domain) and that the server is running"
    )]
    NothingAnswers {
        address: String,
        last: Box<ClientError>,
    },
    /// The request did not complete within `request_timeout`.
    #[error("request to {path} timed out")]
    Timeout { path: String },
    /// Connection refused, reset, closed early, TLS failure, or a body cut short.
    #[error("network error on {path}: {detail}")]
    Network { path: String, detail: String },
    /// The host name does not exist: a mistyped company domain or base URL. Not retried: a
    /// lookup that the name servers answer "no such name" fails the same way next time.
    #[error(
        "the host {host} does not exist (DNS lookup: no such name): check source.company_domain (the part before .pipedrive.com in your Pipedrive address) or source.base_url"
    )]
    UnknownHost { host: String },
    /// The body was not the JSON envelope we expect (malformed, truncated, wrong shape).
    #[error("could not decode the response of {path}: {detail}")]
    Decode { path: String, detail: String },
    /// HTTP 429 from the burst limiter (not the daily budget). Retried; seen by callers only
    /// inside [`ClientError::RetriesExhausted`].
    #[error("rate limited (HTTP 429) on {path}")]
    RateLimited {
        path: String,
        retry_after: Option<Duration>,
    },
    /// HTTP 5xx. Retried; seen by callers only inside [`ClientError::RetriesExhausted`].
    #[error("Pipedrive server error {status} on {path}: {message}")]
    Server {
        path: String,
        status: u16,
        message: String,
    },
    /// HTTP 200 whose envelope says `success: false`.
    #[error("Pipedrive reported failure for {path}: {message}")]
    Api { path: String, message: String },
    /// OAuth token refresh failed (invalid grant, invalid client, or the rotated token could
    /// not be saved).
    #[error("{message}")]
    OAuth { message: String },
    /// A status we have no specific handling for (405, 415, 422, 3xx, …).
    #[error("unexpected HTTP {status} from Pipedrive for {path}: {message}")]
    Unexpected {
        status: u16,
        path: String,
        message: String,
    },
    /// The request or configuration cannot be sent as given (a programming or config error).
    #[error("invalid request: {message}")]
    InvalidRequest { message: String },
}

impl ClientError {
    /// Whether another attempt of the same request may succeed. The retry loop asks this; it
    /// does not guess from status codes.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ClientError::RateLimited { .. }
                | ClientError::Server { .. }
                | ClientError::Timeout { .. }
                | ClientError::Network { .. }
                | ClientError::Decode { .. }
        )
    }

    /// What the engine should do with this error.
    pub fn exit_class(&self) -> ErrorClass {
        match self {
            ClientError::Unauthorized { .. }
            | ClientError::OAuth { .. }
            | ClientError::PaymentRequired { .. } => ErrorClass::Auth,
            ClientError::Forbidden { .. }
            | ClientError::NotFound { .. }
            | ClientError::Gone { .. } => ErrorClass::NotAvailable,
            // 415: "feature not enabled" for this company.
            ClientError::Unexpected { status: 415, .. } => ErrorClass::NotAvailable,
            ClientError::Blocked { .. }
            | ClientError::DailyBudgetExhausted { .. }
            | ClientError::TokenCapReached { .. }
            | ClientError::BudgetReserveReached { .. }
            | ClientError::RetriesExhausted { .. }
            | ClientError::Unreachable { .. }
            | ClientError::Timeout { .. }
            | ClientError::Network { .. }
            | ClientError::RateLimited { .. }
            | ClientError::Server { .. } => ErrorClass::Temporary,
            ClientError::BadRequest { .. }
            | ClientError::Decode { .. }
            | ClientError::Api { .. }
            | ClientError::Unexpected { .. }
            | ClientError::UnknownHost { .. }
            | ClientError::NothingAnswers { .. }
            | ClientError::InvalidRequest { .. } => ErrorClass::Permanent,
        }
    }

    /// When the daily budget resets, for errors caused by an exhausted budget.
    pub fn budget_resets_at(&self) -> Option<DateTime<Utc>> {
        match self {
            ClientError::DailyBudgetExhausted { resets_at }
            | ClientError::BudgetReserveReached { resets_at, .. } => Some(*resets_at),
            ClientError::RetriesExhausted { last, .. } => last.budget_resets_at(),
            _ => None,
        }
    }

    /// Rewrites the free text of the error (text that may have come from a server).
    pub(crate) fn map_text(self, f: &impl Fn(&str) -> String) -> ClientError {
        use ClientError::*;
        match self {
            Unauthorized { message } => Unauthorized {
                message: f(&message),
            },
            Forbidden { message } => Forbidden {
                message: f(&message),
            },
            BadRequest { message } => BadRequest {
                message: f(&message),
            },
            OAuth { message } => OAuth {
                message: f(&message),
            },
            Network { path, detail } => Network {
                path,
                detail: f(&detail),
            },
            Decode { path, detail } => Decode {
                path,
                detail: f(&detail),
            },
            Api { path, message } => Api {
                path,
                message: f(&message),
            },
            Server {
                path,
                status,
                message,
            } => Server {
                path,
                status,
                message: f(&message),
            },
            Unexpected {
                status,
                path,
                message,
            } => Unexpected {
                status,
                path,
                message: f(&message),
            },
            RetriesExhausted { attempts, last } => RetriesExhausted {
                attempts,
                last: Box::new(last.map_text(f)),
            },
            Unreachable { last } => Unreachable {
                last: Box::new(last.map_text(f)),
            },
            NothingAnswers { address, last } => NothingAnswers {
                address,
                last: Box::new(last.map_text(f)),
            },
            other => other,
        }
    }

    /// How long the server asked us to wait, if it said so (429 `Retry-After`/`x-ratelimit-reset`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::RateLimited { retry_after, .. } => *retry_after,
            ClientError::RetriesExhausted { last, .. } => last.retry_after(),
            _ => None,
        }
    }
}

/// Maps a reqwest failure to our error, without the URL (the path is named separately).
pub(crate) fn transport_error(path: &str, e: reqwest::Error) -> ClientError {
    if e.is_timeout() {
        return ClientError::Timeout {
            path: path.to_owned(),
        };
    }
    let host = e.url().and_then(|u| u.host_str()).map(str::to_owned);
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    if let Some(host) = host.filter(|_| is_unknown_host(&detail)) {
        return ClientError::UnknownHost { host };
    }
    ClientError::Network {
        path: path.to_owned(),
        detail: truncate(&detail, 300),
    }
}

/// Whether a connect failure is the resolver's "no such name" (getaddrinfo's EAI_NONAME, as
/// glibc, musl and macOS word it), not a temporary lookup failure (EAI_AGAIN), which is
/// retried like any network error.
fn is_unknown_host(detail: &str) -> bool {
    detail.contains("dns error")
        && [
            "Name or service not known",
            "No address associated with hostname",
            "nodename nor servname provided",
            "Name does not resolve",
        ]
        .iter()
        .any(|text| detail.contains(text))
}

/// `s` cut to at most `max` bytes on a character boundary, marked `…` where cut: error
/// messages quote what the server sent without flooding the terminal.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The tokens a stopped run held above the reserve, where it held any.
fn held_note(held: &u64) -> String {
    match held {
        0 => String::new(),
        held => format!(" (and up to {held} more to estimate what this run leaves)"),
    }
}
