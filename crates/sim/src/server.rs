//! HTTP front: the API's route table (`routes`) wrapped in what every API request goes
//! through on Pipedrive, in its order: faults, auth, rate limits, then the handler, stats and
//! the faults that spoil a response. The admin API and `/oauth/token` sit beside it.

use crate::limits::Decision;
use crate::list::Query;
use crate::respond::{JSON, Resp, json_response};
use crate::routes::Call;
use crate::state::State;
use crate::util::Rng;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Request, State as With};
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use axum::middleware::{self, Next};
use axum::routing::any;
use std::sync::Arc;
use std::time::Duration;

/// The request's path as the client sent it (routing sees the canonical one, nested routers
/// only their part of it): for stats and token costs.
#[derive(Clone)]
pub struct SentPath(pub String);

/// The version prefixes and the version each serves.
const PREFIXES: [(&str, u8); 3] = [("/api/v2/", 2), ("/api/v1/", 1), ("/v1/", 1)];

/// The version and path segments of an API path, or `None` for a path outside the API.
fn api_path(path: &str) -> Option<(u8, Vec<&str>)> {
    PREFIXES.iter().find_map(|(p, ver)| {
        path.strip_prefix(p)
            .map(|rest| (*ver, rest.split('/').filter(|s| !s.is_empty()).collect()))
    })
}

/// Rewrites an API or admin path to its canonical form before routing: no trailing or doubled
/// slashes, which Pipedrive (and the admin API) ignore.
pub fn canonical_path<B>(mut req: axum::http::Request<B>) -> axum::http::Request<B> {
    let sent = SentPath(req.uri().path().to_string());
    req.extensions_mut().insert(sent.clone());
    let path = sent.0.as_str();
    let (prefix, segs): (&str, Vec<&str>) = match api_path(path) {
        Some((_, segs)) => (
            PREFIXES
                .iter()
                .find(|(p, _)| path.starts_with(p))
                .map_or("/api/v1/", |(p, _)| *p),
            segs,
        ),
        None => match path.strip_prefix("/__sim/") {
            Some(rest) => (
                "/__sim/",
                rest.split('/').filter(|s| !s.is_empty()).collect(),
            ),
            None => return req,
        },
    };
    let canonical = format!("{prefix}{}", segs.join("/"));
    if canonical == path {
        return req;
    }
    let rebuilt = match req.uri().query() {
        Some(q) => format!("{canonical}?{q}"),
        None => canonical,
    };
    if let Ok(uri) = rebuilt.parse() {
        *req.uri_mut() = uri;
    }
    req
}

pub fn router(st: Arc<State>) -> Router {
    Router::new()
        .nest("/api/v2", crate::routes::v2())
        .nest("/api/v1", crate::routes::v1())
        .nest("/v1", crate::routes::v1())
        .fallback(crate::routes::unknown)
        .layer(middleware::from_fn_with_state(st.clone(), front))
        .route("/oauth/token", any(oauth_token))
        .route("/oauth/token/", any(oauth_token))
        .nest("/__sim", crate::admin::routes())
        // The nest does not match `/__sim/` (an empty rest): an unknown admin path, as before.
        .route("/__sim/", any(crate::admin::unknown))
        .layer(axum::extract::DefaultBodyLimit::max(32 << 20))
        .with_state(st)
}

async fn oauth_token(
    With(st): With<Arc<State>>,
    method: Method,
    Extension(path): Extension<SentPath>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let (status, body) = crate::admin::oauth_token(&st, method.as_str(), &headers, &body);
    st.stats.record(&normalise(&path.0), status, 0);
    json_response(status, body)
}

const CLOUDFLARE_403: &str = "<!DOCTYPE html>\n<html lang=\"en-US\">\n<head><title>Access denied | api.pipedrive.com used Cloudflare to restrict access</title>\n<meta charset=\"UTF-8\" /></head>\n<body>\n<div id=\"cf-wrapper\"><div id=\"cf-error-details\" class=\"cf-error-details-wrapper\">\n<h1 data-translate=\"block_headline\">Sorry, you have been blocked</h1>\n<h2 class=\"cf-subheadline\"><span data-translate=\"unable_to_access\">You are unable to access</span> pipedrive.com</h2>\n<p>This website is using a security service to protect itself from online attacks.</p>\n<p>Cloudflare Ray ID: <strong class=\"font-semibold\">8f1a2b3c4d5e6f70</strong></p>\n</div></div>\n</body>\n</html>\n";

/// Moves a v1 page's `start` back by `by` records, never before the first one.
fn shift_start_back(q: &mut Query, by: u32) {
    for (key, value) in &mut q.0 {
        if key == "start"
            && let Ok(start) = value.parse::<u64>()
            && start > 0
        {
            *value = start.saturating_sub(u64::from(by)).to_string();
        }
    }
}

/// Replaces ids in a path with `{id}` for per-route stats.
pub fn normalise(path: &str) -> String {
    path.split('/')
        .map(|s| {
            let is_id = (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                || (s.len() == 36 && s.bytes().filter(|b| *b == b'-').count() == 4)
                || (s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()));
            if is_id { "{id}" } else { s }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Faults, auth and rate limits before the handler; stats, the plan's 403 and the response
/// faults after it. A path outside the API answers `Unknown method` untouched by any of them.
async fn front(With(st): With<Arc<State>>, mut req: Request, next: Next) -> Response<Body> {
    let method = req.method().as_str().to_string();
    let path = req
        .extensions()
        .get::<SentPath>()
        .map_or_else(|| req.uri().path().to_string(), |p| p.0.clone());
    let query = req.uri().query().map(str::to_string);
    let headers = req.headers().clone();

    let Some((ver, segs)) = api_path(&path) else {
        let r = crate::respond::unknown_route();
        st.stats.record(&normalise(&path), r.status, 0);
        return json_response(r.status, r.body);
    };
    let route = normalise(&path);
    let mut q = Query::parse(query.as_deref());

    // Latency and faults: decided from the seed and this request's sequence number.
    let n = st
        .fault_counter
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut r = Rng::for_item(st.opts.seed, "fault", n);
    let delay = st.opts.latency_ms
        + if st.opts.jitter_ms > 0 {
            r.below(st.opts.jitter_ms + 1)
        } else {
            0
        };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let f = st.faults.read().map(|f| f.clone()).unwrap_or_default();
    let u = r.unit();
    let mut acc = 0.0;
    let mut pick = |rate: f64| {
        let hit = u >= acc && u < acc + rate;
        acc += rate;
        hit
    };
    let fault_error = pick(f.error_rate);
    let fault_reset = pick(f.reset_rate);
    let fault_truncate = pick(f.truncate_rate);
    let fault_malformed = pick(f.malformed_rate);
    let fault_stall = pick(f.stall_rate);
    let fault_429 = pick(f.rate_429_no_headers);
    if fault_error {
        let status = [500u16, 502, 503][r.below(3) as usize];
        st.stats.record(&route, status, 0);
        let msg = match status {
            500 => "Internal server error",
            502 => "Bad gateway",
            _ => "Service temporarily unavailable",
        };
        let e = crate::respond::err(status, msg);
        return json_response(status, e.body);
    }
    if fault_reset {
        st.stats.record(&route, 0, 0);
        let s = futures::stream::once(async {
            Err::<bytes::Bytes, std::io::Error>(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "simulated connection reset",
            ))
        });
        let mut resp = Response::new(Body::from_stream(s));
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
        return resp;
    }
    if fault_stall {
        let extra = r.below(f.stall_ms.max(1)) + 1;
        tokio::time::sleep(Duration::from_millis(f.stall_ms + extra)).await;
    }
    if fault_429 {
        st.stats.record(&route, 429, 0);
        let e = crate::respond::err(429, "Request over limit");
        return json_response(429, e.body);
    }

    // Auth.
    let auth = authenticate(&st, &headers, &q);
    let Some((token_key, oauth)) = auth else {
        st.stats.record(&route, 401, 0);
        let body = br#"{"success":false,"error":"unauthorized access","errorCode":401,"error_info":"Please check developers.pipedrive.com"}"#;
        return json_response(401, body.to_vec());
    };

    // Rate limits.
    let cost = st
        .costs
        .lookup(&method, ver, &segs)
        .map(|c| c.0)
        .unwrap_or_else(|| crate::costs::default_cost(&method, ver)) as u64;
    let now = st.clock.now();
    let mut hdrs = HeaderMap::new();
    let put = |h: &mut HeaderMap, x: &crate::limits::Headers| {
        let mut set = |k: &'static str, v: String| {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(k, v);
            }
        };
        set("x-ratelimit-limit", x.limit.to_string());
        set("x-ratelimit-remaining", x.remaining.to_string());
        set("x-ratelimit-reset", x.reset_s.to_string());
        set("x-daily-ratelimit-token-limit", x.daily_limit.to_string());
        set(
            "x-daily-ratelimit-token-remaining",
            x.daily_remaining.to_string(),
        );
    };
    match st.limiter.check(&token_key, oauth, cost, now) {
        Decision::Ok(h) => put(&mut hdrs, &h),
        Decision::Blocked(retry) => {
            st.stats.record(&route, 403, 0);
            let mut resp = Response::new(Body::from(CLOUDFLARE_403));
            *resp.status_mut() = StatusCode::FORBIDDEN;
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=UTF-8"),
            );
            h.insert("server", HeaderValue::from_static("cloudflare"));
            if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
                h.insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
        d @ (Decision::Burst(..) | Decision::Daily(..)) => {
            let (h, retry, daily) = match d {
                Decision::Burst(h, r) => (h, r, false),
                Decision::Daily(h, r) => (h, r, true),
                _ => unreachable!(),
            };
            put(&mut hdrs, &h);
            st.stats.record(&route, 429, 0);
            let msg = if daily {
                "Daily API token budget exhausted. Your company has used all of its API tokens for today; the budget resets at midnight UTC.".to_string()
            } else {
                format!(
                    "Rate limit exceeded: too many requests in a short period. The burst limit is {} requests per 2 seconds per token.",
                    h.limit
                )
            };
            let mut j = crate::json::J::default();
            j.obj()
                .kb("success", false)
                .ks("error", &msg)
                .ki("errorCode", 429);
            j.ks("error_info", crate::respond::ERROR_INFO)
                .knull("data")
                .knull("additional_data")
                .end_obj();
            let mut resp = json_response(429, j.buf);
            resp.headers_mut().extend(hdrs);
            if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
    }

    if method == "GET" && ver == 1 && f.page_overlap > 0 {
        shift_start_back(&mut q, f.page_overlap);
    }

    let now = if method == "GET" {
        now
    } else {
        st.write_time(now)
    };
    let call = Arc::new(Call {
        ver,
        segs: segs.iter().map(|s| s.to_string()).collect(),
        q,
        now,
    });
    req.extensions_mut().insert(call.clone());
    let answered = if method == "HEAD" {
        // HEAD is no operation of the API: it answers as a write to the path would.
        let body = axum::body::to_bytes(req.into_body(), 32 << 20)
            .await
            .unwrap_or_default();
        let mut db = st.db.write().unwrap_or_else(|e| e.into_inner());
        crate::write::dispatch(&call.ctx(), &mut db, ver, &method, &segs, &body)
    } else {
        let mut out = next.run(req).await;
        match out.extensions_mut().remove::<Resp>() {
            Some(resp) => resp,
            // An extractor's rejection (a body over the limit): passed on as it is.
            None => {
                st.stats.record(&route, out.status().as_u16(), cost);
                out.headers_mut().extend(hdrs);
                return out;
            }
        }
    };
    // An operation of the official specs that the simulator does not serve answers as the
    // real API answers one the company's plan does not include, never as a typo.
    let resp = if crate::respond::is_unknown_route(&answered)
        && st.costs.lookup(&method, ver, &segs).is_some()
    {
        crate::respond::not_in_plan()
    } else {
        answered
    };
    st.stats.record(&route, resp.status, cost);

    let mut out = if fault_truncate && resp.body.len() > 1 {
        let full = resp.body.len();
        let cut = bytes::Bytes::from(resp.body[..full / 2].to_vec());
        // Flush the head and the first half, then abort: the client sees a short body.
        use futures::StreamExt;
        let s = futures::stream::once(async move { Ok::<bytes::Bytes, std::io::Error>(cut) })
            .chain(futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "simulated truncation",
                ))
            }));
        let mut r = Response::new(Body::from_stream(s));
        *r.status_mut() = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::OK);
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
        if let Ok(v) = HeaderValue::from_str(&full.to_string()) {
            r.headers_mut().insert(header::CONTENT_LENGTH, v);
        }
        r
    } else if fault_malformed {
        let mut b = resp.body;
        b.truncate(b.len() * 2 / 3);
        b.extend_from_slice(b"\x00<html>");
        json_response(resp.status, b)
    } else {
        json_response(resp.status, resp.body)
    };
    out.headers_mut().extend(hdrs);
    out
}

/// Returns the rate-limit key and whether the caller used OAuth.
fn authenticate(st: &State, h: &HeaderMap, q: &Query) -> Option<(String, bool)> {
    if let Some(t) = h.get("x-api-token").and_then(|v| v.to_str().ok()) {
        return (t == st.api_token).then(|| (format!("api:{t}"), false));
    }
    if let Some(a) = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let t = a
            .strip_prefix("Bearer ")
            .or_else(|| a.strip_prefix("bearer "))?;
        let now = st.clock.now();
        let o = st.oauth.lock().unwrap_or_else(|e| e.into_inner());
        return o
            .access
            .get(t)
            .is_some_and(|exp| *exp > now)
            .then(|| ("oauth:app".to_string(), true));
    }
    // Not in the current specs, yet the real API accepts it on v1 and v2 alike, and maintained
    // connectors send it on every request.
    if let Some(t) = q.get("api_token") {
        return (t == st.api_token).then(|| (format!("api:{t}"), false));
    }
    None
}
