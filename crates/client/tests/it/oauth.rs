use std::sync::{Arc, Mutex};

use base64::Engine as _;
use pipedrive_client::{
    Client, ClientError, Credentials, ErrorClass, OAuthCredentials, Request, SecretString,
};
use secrecy::ExposeSecret;

use crate::support::{Hit, Reply, config, fast_backoff, serve};

pub const CLIENT_SECRET: &str = "cs_5ecret_9876543210";
pub const REFRESH_1: &str = "rt_first_0123456789";
pub const REFRESH_2: &str = "rt_second_0123456789";

fn form(hit: &Hit) -> Vec<(String, String)> {
    url::form_urlencoded::parse(hit.body.as_bytes())
        .into_owned()
        .collect()
}

fn token_reply(access: &str, refresh: &str) -> Reply {
    Reply::ok(format!(
        r#"{{"access_token":"{access}","token_type":"Bearer","refresh_token":"{refresh}","scope":"base","expires_in":3599,"api_domain":"https://acme.pipedrive.com"}}"#
    ))
}

pub fn oauth_client(base: &url::Url, rotated: Arc<Mutex<Vec<String>>>) -> Client {
    let mut cfg = config(base);
    cfg.credentials = Credentials::OAuth(OAuthCredentials {
        client_id: "app-id".into(),
        client_secret: SecretString::from(CLIENT_SECRET.to_owned()),
        refresh_token: SecretString::from(REFRESH_1.to_owned()),
        token_url: base.join("/oauth/token").unwrap(),
        on_rotate: Some(Arc::new(move |t: &SecretString| {
            rotated.lock().unwrap().push(t.expose_secret().to_owned());
            Ok(())
        })),
    });
    Client::with_backoff(cfg, fast_backoff()).unwrap()
}

#[tokio::test]
async fn refreshes_once_rotates_and_uses_bearer() {
    let mock = serve(|hit, _| {
        if hit.path == "/oauth/token" {
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("app-id:{CLIENT_SECRET}"));
            assert_eq!(
                hit.headers["authorization"],
                format!("Basic {basic}").as_str()
            );
            let f = form(hit);
            assert!(f.contains(&("grant_type".into(), "refresh_token".into())));
            assert!(f.contains(&("refresh_token".into(), REFRESH_1.into())));
            return token_reply("at-1", REFRESH_2).delay(std::time::Duration::from_millis(100));
        }
        if hit
            .headers
            .get("authorization")
            .map(|v| v.to_str().unwrap())
            != Some("Bearer at-1")
        {
            return Reply::json(401, r#"{"success":false,"error":"unauthorized access"}"#);
        }
        assert!(hit.headers.get("x-api-token").is_none());
        Reply::ok(r#"{"success":true,"data":[{"id":1}]}"#)
    })
    .await;
    let rotated = Arc::new(Mutex::new(Vec::new()));
    let c = oauth_client(&mock.url, rotated.clone());
    let req = Request::new("/api/v2/deals");
    let results = futures::future::join_all((0..4).map(|_| c.send(&req))).await;
    assert!(results.iter().all(Result::is_ok));
    let token_calls = mock
        .hits()
        .iter()
        .filter(|h| h.path == "/oauth/token")
        .count();
    assert_eq!(token_calls, 1, "one refresh in flight");
    assert_eq!(*rotated.lock().unwrap(), vec![REFRESH_2.to_owned()]);
    // The loopback simulator keeps its base URL although api_domain named another host.
    assert_eq!(
        mock.hits()
            .iter()
            .filter(|h| h.path == "/api/v2/deals")
            .count(),
        4
    );
}

#[tokio::test]
async fn a_401_refreshes_once_with_the_rotated_token() {
    let mock = serve(|hit, _| {
        if hit.path == "/oauth/token" {
            let f = form(hit);
            return if f.contains(&("refresh_token".into(), REFRESH_1.into())) {
                token_reply("at-1", REFRESH_2)
            } else if f.contains(&("refresh_token".into(), REFRESH_2.into())) {
                token_reply("at-2", REFRESH_2)
            } else {
                Reply::json(400, r#"{"success":false,"message":"Invalid grant: refresh token is invalid","error":"invalid_grant"}"#)
            };
        }
        match hit.headers["authorization"].to_str().unwrap() {
            "Bearer at-2" => Reply::ok(r#"{"success":true,"data":[]}"#),
            _ => Reply::json(401, r#"{"success":false,"error":"unauthorized access"}"#),
        }
    })
    .await;
    let rotated = Arc::new(Mutex::new(Vec::new()));
    let c = oauth_client(&mock.url, rotated.clone());
    c.send(&Request::new("/api/v2/deals")).await.unwrap();
    let paths: Vec<_> = mock.hits().iter().map(|h| h.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/oauth/token",
            "/api/v2/deals",
            "/oauth/token",
            "/api/v2/deals"
        ]
    );
    assert_eq!(*rotated.lock().unwrap(), vec![REFRESH_2.to_owned()]);
}

#[tokio::test]
async fn persistent_401_fails_after_one_refresh() {
    let mock = serve(|hit, n| {
        if hit.path == "/oauth/token" {
            return token_reply(&format!("at-{n}"), REFRESH_1);
        }
        Reply::json(401, r#"{"success":false,"error":"unauthorized access"}"#)
    })
    .await;
    let c = oauth_client(&mock.url, Arc::default());
    let err = c.send(&Request::new("/api/v2/deals")).await.unwrap_err();
    assert!(matches!(err, ClientError::Unauthorized { .. }), "{err:?}");
    assert_eq!(err.exit_class(), ErrorClass::Auth);
    assert_eq!(mock.count(), 4, "token, api, token, api");
}

#[tokio::test]
async fn invalid_grant_tells_the_user_to_reauthorise() {
    let mock = serve(|_, _| {
        Reply::json(
            400,
            format!(r#"{{"success":false,"message":"Invalid grant: refresh token is invalid ({REFRESH_1})","error":"invalid_grant"}}"#),
        )
    })
    .await;
    let c = oauth_client(&mock.url, Arc::default());
    let err = c.send(&Request::new("/api/v2/deals")).await.unwrap_err();
    assert!(matches!(err, ClientError::OAuth { .. }), "{err:?}");
    assert_eq!(err.exit_class(), ErrorClass::Auth);
    let text = err.to_string();
    assert!(
        text.contains("re-authorise") && text.contains("source.oauth.refresh_token"),
        "{text}"
    );
    assert!(!text.contains(REFRESH_1) && !format!("{err:?}").contains(REFRESH_1));
    assert_eq!(mock.count(), 1, "not retried");
}

#[tokio::test]
async fn failing_to_save_a_rotated_token_stops() {
    let mock = serve(|_, _| token_reply("at-1", REFRESH_2)).await;
    let mut cfg = config(&mock.url);
    cfg.credentials = Credentials::OAuth(OAuthCredentials {
        client_id: "app-id".into(),
        client_secret: SecretString::from(CLIENT_SECRET.to_owned()),
        refresh_token: SecretString::from(REFRESH_1.to_owned()),
        token_url: mock.url.join("/oauth/token").unwrap(),
        on_rotate: Some(Arc::new(|_| Err(std::io::Error::other("disk full")))),
    });
    let c = Client::with_backoff(cfg, fast_backoff()).unwrap();
    let err = c.send(&Request::new("/api/v2/deals")).await.unwrap_err();
    assert!(matches!(err, ClientError::OAuth { .. }), "{err:?}");
    assert!(err.to_string().contains("disk full"));
    assert_eq!(mock.count(), 1, "the API was not called");
}

#[tokio::test]
async fn api_domain_replaces_the_generic_host() {
    // The token endpoint says the company lives on the loopback server; the configured base is
    // the generic host, which must never be contacted.
    let mock = serve(|hit, _| {
        if hit.path == "/oauth/token" {
            let domain = hit.headers["host"].to_str().unwrap().to_owned();
            return Reply::ok(format!(
                r#"{{"access_token":"at-1","token_type":"Bearer","expires_in":3599,"api_domain":"http://{domain}"}}"#
            ));
        }
        Reply::ok(r#"{"success":true,"data":[]}"#)
    })
    .await;
    let mut cfg = config(&url::Url::parse("https://api.pipedrive.com").unwrap());
    cfg.credentials = Credentials::OAuth(OAuthCredentials {
        client_id: "app-id".into(),
        client_secret: SecretString::from(CLIENT_SECRET.to_owned()),
        refresh_token: SecretString::from(REFRESH_1.to_owned()),
        token_url: mock.url.join("/oauth/token").unwrap(),
        on_rotate: None,
    });
    let c = Client::with_backoff(cfg, fast_backoff()).unwrap();
    c.send(&Request::new("/api/v2/deals")).await.unwrap();
    assert_eq!(mock.hits()[1].path, "/api/v2/deals");
}
