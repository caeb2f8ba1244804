use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pipedrive_client::{Client, ClientError, ErrorClass, Paging, Request};

use crate::support::{
    Raw, Reply, client, config, fast_backoff, http_json, records, serve, serve_raw,
};

const OK: &str = r#"{"success":true,"data":[{"id":1}]}"#;

fn deals() -> Request {
    Request {
        paging: Paging::Cursor { limit: 10 },
        token_cost: 10,
        ..Request::new("/api/v2/deals")
    }
}

#[tokio::test]
async fn retries_5xx_then_succeeds() {
    let mock = serve(|_, n| match n {
        0 => Reply::json(500, r#"{"success":false,"error":"boom"}"#),
        1 => Reply::html(502, "<html>bad gateway</html>"),
        2 => Reply::json(503, r#"{"success":false,"error":"maintenance"}"#),
        _ => Reply::ok(OK),
    })
    .await;
    let c = client(&mock.url);
    let page = c.send(&deals()).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(mock.count(), 4);
    let s = c.stats();
    assert_eq!(s.retries, 3);
    assert_eq!(s.requests, 4);
    // 5xx are not charged; the success is.
    assert_eq!(s.tokens_spent, 10);
}

#[tokio::test]
async fn retries_malformed_json_and_429_without_headers() {
    let mock = serve(|_, n| match n {
        0 => Reply::ok(r#"{"success":true,"data":[{"id":1},"#),
        1 => Reply::ok("<html>not json</html>"),
        2 => Reply::json(429, r#"{"success":false,"error":"Rate limit exceeded"}"#),
        _ => Reply::ok(OK),
    })
    .await;
    let c = client(&mock.url);
    assert!(c.send(&deals()).await.is_ok());
    assert_eq!(mock.count(), 4);
    assert_eq!(c.stats().responses_429, 1);
    // The malformed bodies were processed and charged; the 429 was turned away.
    assert_eq!(c.stats().tokens_spent, 30);
}

#[tokio::test]
async fn retries_connection_reset_and_truncated_body() {
    let truncated = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 200\r\nconnection: close\r\n\r\n{\"success\":true,\"data\":[{\"id\":1}";
    let (url, connections) = serve_raw(vec![
        Raw::Reset,
        Raw::Bytes(truncated.into()),
        Raw::Bytes(http_json(OK)),
    ])
    .await;
    let c = client(&url);
    let page = c.send(&deals()).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(connections.load(Ordering::SeqCst), 3);
    assert_eq!(c.stats().retries, 2);
}

#[tokio::test]
async fn retries_timeouts() {
    let mock = serve(|_, n| match n {
        0 => Reply::ok(OK).delay(Duration::from_secs(3)),
        _ => Reply::ok(OK),
    })
    .await;
    let mut cfg = config(&mock.url);
    cfg.request_timeout = Duration::from_millis(300);
    let c = Client::with_backoff(cfg, fast_backoff()).unwrap();
    assert!(c.send(&deals()).await.is_ok());
    assert_eq!(mock.count(), 2);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let mock = serve(|_, n| match n {
        0 => Reply::json(429, r#"{"success":false,"error":"Too many requests"}"#)
            .header("retry-after", "1"),
        1 => Reply::json(429, r#"{"success":false,"error":"Too many requests"}"#)
            .header("x-ratelimit-limit", 20)
            .header("x-ratelimit-remaining", 0)
            .header("x-ratelimit-reset", "0.5"),
        _ => Reply::ok(OK),
    })
    .await;
    let c = client(&mock.url);
    let t0 = Instant::now();
    c.send(&deals()).await.unwrap();
    let hits = mock.hits();
    assert_eq!(hits.len(), 3);
    let gap1 = hits[1].at.duration_since(hits[0].at);
    let gap2 = hits[2].at.duration_since(hits[1].at);
    assert!(gap1 >= Duration::from_millis(1000), "waited {gap1:?}");
    assert!(gap2 >= Duration::from_millis(500), "waited {gap2:?}");
    assert!(t0.elapsed() < Duration::from_secs(4));
    assert_eq!(c.stats().responses_429, 2);
}

#[tokio::test]
async fn a_429_pauses_every_stream() {
    let mock = serve(|_, n| match n {
        0 => Reply::ok(OK).header("x-ratelimit-limit", 100),
        1 => Reply::json(429, r#"{"success":false}"#).header("retry-after", "1"),
        _ => Reply::ok(OK).header("x-ratelimit-limit", 100),
    })
    .await;
    let c = client(&mock.url);
    c.send(&deals()).await.unwrap();
    let req = deals();
    let first = c.send(&req);
    let others = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        futures::future::join_all((0..3).map(|_| c.send(&req))).await
    };
    let (a, b) = tokio::join!(first, others);
    a.unwrap();
    assert!(b.into_iter().all(|r| r.is_ok()));
    let hits = mock.hits();
    let after = hits[1].at + Duration::from_millis(950);
    assert!(
        hits[2..].iter().all(|h| h.at >= after),
        "nobody sends during the pause"
    );
}

#[tokio::test]
async fn attempts_are_bounded_with_a_clear_error() {
    let mock =
        serve(|_, _| Reply::json(503, r#"{"success":false,"error":"down for maintenance"}"#)).await;
    let mut cfg = config(&mock.url);
    cfg.max_attempts = 3;
    let c = Client::with_backoff(cfg, fast_backoff()).unwrap();
    let err = c.send(&deals()).await.unwrap_err();
    assert_eq!(mock.count(), 3);
    match &err {
        ClientError::RetriesExhausted { attempts, last } => {
            assert_eq!(*attempts, 3);
            assert!(matches!(**last, ClientError::Server { status: 503, .. }));
        }
        other => panic!("unexpected {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("3 attempts")
            && text.contains("/api/v2/deals")
            && text.contains("maintenance"),
        "{text}"
    );
    assert_eq!(err.exit_class(), ErrorClass::Temporary);
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn non_retryable_statuses_fail_at_once() {
    let mock = serve(|hit, _| match hit.path.as_str() {
        "/api/v1/users/me" => Reply::json(
            401,
            r#"{"success":false,"error":"unauthorized access","errorCode":401}"#,
        ),
        "/api/v1/permissionSets" => Reply::json(
            403,
            r#"{"success":false,"error":"You do not have permissions to do this."}"#,
        ),
        "/api/v1/goals/find" => Reply::json(402, r#"{"success":false,"error":"Payment required"}"#),
        "/api/v1/leads/x" => Reply::json(
            404,
            r#"{"success":false,"error":"requested lead not found"}"#,
        ),
        "/api/v1/callLogs/1" => Reply::json(410, r#"{"success":false,"error":"gone"}"#),
        "/api/v2/deals" => Reply::json(
            400,
            r#"{"success":false,"error":"Validation failed: limit must be <= 500"}"#,
        ),
        "/api/v2/persons" => Reply::ok(r#"{"success":false,"error":"something odd"}"#),
        _ => Reply::json(415, r#"{"success":false,"error":"feature not enabled"}"#),
    })
    .await;
    let c = client(&mock.url);
    let cases: [(&str, ErrorClass); 8] = [
        ("/api/v1/users/me", ErrorClass::Auth),
        ("/api/v1/permissionSets", ErrorClass::NotAvailable),
        ("/api/v1/goals/find", ErrorClass::Auth),
        ("/api/v1/leads/x", ErrorClass::NotAvailable),
        ("/api/v1/callLogs/1", ErrorClass::NotAvailable),
        ("/api/v2/deals", ErrorClass::Permanent),
        ("/api/v2/persons", ErrorClass::Permanent),
        ("/api/v1/projects", ErrorClass::NotAvailable),
    ];
    for (i, (path, class)) in cases.iter().enumerate() {
        let err = c.send(&Request::new(*path)).await.unwrap_err();
        assert_eq!(err.exit_class(), *class, "{path}: {err}");
        assert!(!err.is_retryable(), "{path}");
        assert!(err.to_string().contains(path), "{path}: {err}");
        assert_eq!(mock.count(), i + 1, "{path} was sent once");
    }
    let err = c.send(&Request::new("/api/v1/users/me")).await.unwrap_err();
    assert!(matches!(err, ClientError::Unauthorized { .. }));
    assert!(err.to_string().contains("PIPEDRIVE_API_TOKEN"), "{err}");
    let err = c.send(&Request::new("/api/v2/deals")).await.unwrap_err();
    assert!(err.to_string().contains("limit must be <= 500"), "{err}");
    assert_eq!(c.stats().retries, 0);
}

#[tokio::test]
async fn html_403_blocks_without_hammering() {
    let mock = serve(|_, _| {
        Reply::html(
            403,
            "<html><title>Attention Required! | Cloudflare</title></html>",
        )
    })
    .await;
    let c = client(&mock.url);
    let err = c.send(&deals()).await.unwrap_err();
    assert!(matches!(err, ClientError::Blocked { .. }), "{err:?}");
    assert!(err.to_string().contains("wait and retry"));
    assert_eq!(err.exit_class(), ErrorClass::Temporary);
    // Other requests fail fast for a while instead of hitting the edge again.
    let err = c.send(&deals()).await.unwrap_err();
    assert!(matches!(err, ClientError::Blocked { .. }));
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn daily_budget_exhaustion_fails_fast_without_sending() {
    let mock = serve(|_, _| {
        Reply::ok(format!(r#"{{"success":true,"data":{}}}"#, records(0..1)))
            .header("x-daily-ratelimit-token-limit", 30000)
            .header("x-daily-ratelimit-token-remaining", 15)
    })
    .await;
    let c = client(&mock.url);
    c.send(&deals()).await.unwrap();
    let b = c.budget();
    assert_eq!(b.daily_remaining, Some(15));
    assert_eq!(b.daily_limit, Some(30000));
    let v1 = Request {
        token_cost: 20,
        ..Request::new("/api/v1/notes")
    };
    let err = c.send(&v1).await.unwrap_err();
    assert!(
        matches!(err, ClientError::DailyBudgetExhausted { .. }),
        "{err:?}"
    );
    assert!(err.budget_resets_at().is_some());
    assert_eq!(err.exit_class(), ErrorClass::Temporary);
    assert_eq!(mock.count(), 1, "nothing sent");
    // A cheaper request still fits.
    c.send(&Request {
        token_cost: 10,
        ..deals()
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn daily_budget_429_stops_everything() {
    let mock = serve(|_, _| {
        Reply::json(429, r#"{"success":false,"error":"Daily token budget exceeded","error_info":"Please check developers.pipedrive.com"}"#)
            .header("x-daily-ratelimit-token-remaining", 0)
    })
    .await;
    let c = client(&mock.url);
    let err = c.send(&deals()).await.unwrap_err();
    let resets = err.budget_resets_at().expect("reset time");
    assert!(resets > chrono::Utc::now());
    assert_eq!(mock.count(), 1, "not retried");
    let err = c.send(&deals()).await.unwrap_err();
    assert!(matches!(err, ClientError::DailyBudgetExhausted { .. }));
    assert_eq!(mock.count(), 1, "fails fast afterwards");
    assert_eq!(c.budget().resets_at, Some(resets));
}

#[tokio::test]
async fn token_cap_is_enforced_before_sending() {
    let mock = serve(|_, _| Reply::ok(OK)).await;
    let mut cfg = config(&mock.url);
    cfg.max_tokens = Some(25);
    let c = Client::with_backoff(cfg, fast_backoff()).unwrap();
    c.send(&deals()).await.unwrap();
    c.send(&deals()).await.unwrap();
    let err = c.send(&deals()).await.unwrap_err();
    assert!(
        matches!(err, ClientError::TokenCapReached { cap: 25, spent: 20 }),
        "{err:?}"
    );
    assert_eq!(mock.count(), 2);
    assert_eq!(c.budget().tokens_spent, 20);
}

#[tokio::test]
async fn stats_normalise_ids() {
    let mock = serve(|_, _| Reply::ok(OK)).await;
    let c = client(&mock.url);
    for id in [1, 22, 333] {
        c.send(&Request {
            token_cost: 40,
            ..Request::new(format!("/api/v1/deals/{id}/flow"))
        })
        .await
        .unwrap();
    }
    let s = c.stats();
    let p = s.per_path["/api/v1/deals/{id}/flow"];
    assert_eq!((p.requests, p.tokens_spent), (3, 120));
}

#[tokio::test]
async fn cross_host_redirects_are_not_followed() {
    let elsewhere = serve(|_, _| Reply::ok(OK)).await;
    let target = elsewhere.url.join("/api/v2/deals").unwrap().to_string();
    let mock = serve(move |hit, _| match hit.path.as_str() {
        "/api/v2/moved" => Reply::json(301, "{}").header("location", "/api/v2/deals"),
        "/api/v2/deals" => Reply::ok(OK),
        _ => Reply::json(302, "{}").header("location", &target),
    })
    .await;
    let c = client(&mock.url);
    c.send(&Request::new("/api/v2/moved")).await.unwrap();
    let err = c.send(&Request::new("/api/v2/away")).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Unexpected { status: 302, .. }),
        "{err:?}"
    );
    assert_eq!(
        elsewhere.count(),
        0,
        "the token never left for another host"
    );
}

#[test]
fn futures_and_streams_are_send() {
    fn send<T: Send + 'static>(_: &T) {}
    fn send_ref<T: Send>(_: &T) {}
    let c = client(&url::Url::parse("http://127.0.0.1:9").unwrap());
    let req = deals();
    send(&c.pages(req.clone()));
    send_ref(&c.send(&req));
    send(&c);
}

#[tokio::test]
async fn an_unknown_host_fails_at_once_naming_the_company_domain() {
    // `.invalid` never resolves (RFC 2606), with or without a network.
    let url = url::Url::parse("http://no-such-company.invalid").unwrap();
    let c = Client::with_backoff(config(&url), fast_backoff()).unwrap();
    let error = c.send(&deals()).await.unwrap_err();
    assert!(
        matches!(&error, ClientError::UnknownHost { host } if host == "no-such-company.invalid"),
        "{error:?}"
    );
    assert_eq!(error.exit_class(), ErrorClass::Permanent);
    assert!(error.to_string().contains("company_domain"), "{error}");
    assert_eq!(c.stats().retries, 0);
}

#[tokio::test]
async fn a_host_that_never_answered_is_tried_twice_and_one_that_went_down_once_per_run() {
    // A port nobody listens on: connections are refused.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = url::Url::parse(&format!("http://{addr}")).unwrap();
    let mut cfg = config(&url);
    cfg.max_attempts = 3;
    let c = Client::with_backoff(cfg, fast_backoff()).unwrap();

    // Nothing ever answered there: a wrong address, not an outage.
    let first = c.send(&deals()).await.unwrap_err();
    assert!(
        matches!(&first, ClientError::NothingAnswers { .. }),
        "{first:?}"
    );
    assert_eq!(c.stats().requests, 2);
    assert_eq!(first.exit_class(), ErrorClass::Permanent);
    let text = first.to_string();
    assert!(
        text.contains(&addr.to_string()) && text.contains("source.base_url"),
        "{text}"
    );

    // The host comes up and answers, then goes down: now it is retried in full, once.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(http_json(OK).as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    assert_eq!(c.send(&deals()).await.unwrap().items.len(), 1);
    server.abort();
    let _ = server.await;
    let down = c.send(&deals()).await.unwrap_err();
    assert!(
        matches!(&down, ClientError::RetriesExhausted { attempts: 3, .. }),
        "a host that answered before is retried in full: {down:?}"
    );
    assert_eq!(c.stats().requests, 6);
    let second = c.send(&deals()).await.unwrap_err();
    assert!(
        matches!(&second, ClientError::Unreachable { .. }),
        "{second:?}"
    );
    assert_eq!(c.stats().requests, 7, "the next request is sent once");
    assert_eq!(second.exit_class(), ErrorClass::Temporary);
    let text = second.to_string();
    assert!(
        text.contains("/api/v2/deals") && text.contains("source.base_url"),
        "{text}"
    );
}

#[tokio::test]
async fn a_server_that_does_not_speak_http_fails_at_once_naming_the_address() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let _ = socket.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
            let _ = socket.shutdown().await;
        }
    });
    let url = url::Url::parse(&format!("http://{addr}")).unwrap();
    let c = Client::with_backoff(config(&url), fast_backoff()).unwrap();
    let error = c.send(&deals()).await.unwrap_err();
    server.abort();
    assert!(
        matches!(&error, ClientError::NothingAnswers { .. }),
        "{error:?}"
    );
    assert_eq!(c.stats().requests, 1);
    assert!(error.to_string().contains("source.base_url"), "{error}");
}

#[tokio::test]
async fn a_host_that_accepts_connections_is_retried_in_full_every_time() {
    let (url, connections) = serve_raw(vec![Raw::Reset]).await;
    let mut cfg = config(&url);
    cfg.max_attempts = 3;
    let c = Client::with_backoff(cfg, fast_backoff()).unwrap();
    for _ in 0..2 {
        let error = c.send(&deals()).await.unwrap_err();
        assert!(
            matches!(&error, ClientError::RetriesExhausted { attempts: 3, .. }),
            "{error:?}"
        );
    }
    assert_eq!(connections.load(Ordering::SeqCst), 6);
}
