//! No credential may appear in Debug/Display output, errors, logs or URLs.

use std::io::Write;
use std::sync::{Arc, Mutex};

use pipedrive_client::{Client, ClientError, Credentials, OAuthCredentials, Request, SecretString};

use crate::oauth::{CLIENT_SECRET, REFRESH_1, REFRESH_2, oauth_client};
use crate::support::{Reply, TOKEN, client, config, fast_backoff, serve};

const ACCESS: &str = "at_5ecret_access_424242";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn assert_clean(what: &str, text: &str) {
    for secret in [TOKEN, CLIENT_SECRET, REFRESH_1, REFRESH_2, ACCESS] {
        assert!(!text.contains(secret), "{what} leaks a secret: {text}");
    }
}

#[tokio::test]
async fn secrets_never_appear_in_debug_errors_or_logs() {
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // A hostile server that echoes credentials back in its error texts.
    let mock = serve(|hit, _| {
        let echo = hit
            .headers
            .get("x-api-token")
            .or(hit.headers.get("authorization"))
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        match hit.path.as_str() {
            "/oauth/token" => Reply::ok(format!(
                r#"{{"access_token":"{ACCESS}","refresh_token":"{REFRESH_2}","expires_in":3599}}"#
            )),
            "/api/v1/users/me" => Reply::json(
                401,
                format!(r#"{{"success":false,"error":"bad token {echo}"}}"#),
            ),
            "/api/v2/bad" => Reply::json(
                400,
                format!(r#"{{"success":false,"error":"rejected {echo}"}}"#),
            ),
            "/api/v2/forbidden" => {
                Reply::json(403, format!(r#"{{"success":false,"error":"no {echo}"}}"#))
            }
            "/api/v2/flaky" => {
                Reply::json(500, format!(r#"{{"success":false,"error":"oops {echo}"}}"#))
            }
            _ => Reply::ok(format!(r#"{{"success":false,"error":"odd {echo}"}}"#)),
        }
    })
    .await;

    let cfg = config(&mock.url);
    assert_clean("ClientConfig Debug", &format!("{cfg:?}"));
    let c = client(&mock.url);
    assert_clean("Client Debug", &format!("{c:?}"));

    let mut errors: Vec<ClientError> = Vec::new();
    for path in [
        "/api/v1/users/me",
        "/api/v2/bad",
        "/api/v2/forbidden",
        "/api/v2/flaky",
        "/api/v2/odd",
    ] {
        errors.push(c.send(&Request::new(path)).await.unwrap_err());
    }

    let o = oauth_client(&mock.url, Arc::default());
    assert_clean("OAuth Client Debug", &format!("{o:?}"));
    for path in ["/api/v1/users/me", "/api/v2/bad", "/api/v2/flaky"] {
        errors.push(o.send(&Request::new(path)).await.unwrap_err());
    }
    let oauth_cfg = {
        let mut c = config(&mock.url);
        c.credentials = Credentials::OAuth(OAuthCredentials {
            client_id: "id".into(),
            client_secret: SecretString::from(CLIENT_SECRET.to_owned()),
            refresh_token: SecretString::from(REFRESH_1.to_owned()),
            token_url: mock.url.join("/oauth/token").unwrap(),
            on_rotate: None,
        });
        c
    };
    assert_clean("OAuth ClientConfig Debug", &format!("{oauth_cfg:?}"));
    assert_clean(
        "Client Debug",
        &format!(
            "{:?}",
            Client::with_backoff(oauth_cfg, fast_backoff()).unwrap()
        ),
    );

    assert_eq!(errors.len(), 8);
    for e in &errors {
        assert_clean("error Display", &e.to_string());
        assert_clean("error Debug", &format!("{e:?}"));
    }
    for hit in mock.hits() {
        assert!(
            hit.query
                .iter()
                .all(|(k, v)| k != "api_token" && v != TOKEN)
        );
    }
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("/api/v2/flaky"), "logs were captured: {logs}");
    assert_clean("logs", &logs);

    let err = c
        .send(&Request {
            query: vec![("api_token".into(), "x".into())],
            ..Request::new("/api/v1/users")
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidRequest { .. }));
}
