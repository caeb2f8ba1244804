//! A tiny scripted HTTP server for the client tests: axum for well-formed replies, raw TCP for
//! connection resets and truncated bodies.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request as HttpRequest, StatusCode};
use axum::response::Response;
use pipedrive_client::{Backoff, Client, ClientConfig, Credentials, SecretString};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

pub const TOKEN: &str = "tok_5ecret_abcdef0123456789";

/// What the server saw.
#[derive(Clone, Debug)]
pub struct Hit {
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: String,
    pub at: tokio::time::Instant,
}

impl Hit {
    pub fn q(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A scripted reply.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
    pub fn ok(body: impl Into<String>) -> Reply {
        Reply::json(200, body)
    }
    pub fn html(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "text/html".into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, k: &str, v: impl ToString) -> Reply {
        self.headers.push((k.into(), v.to_string()));
        self
    }
    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

type Handler = Arc<dyn Fn(&Hit, usize) -> Reply + Send + Sync>;

pub struct Mock {
    pub url: Url,
    pub hits: Arc<Mutex<Vec<Hit>>>,
}

impl Mock {
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
    pub fn count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }
}

/// Serves `handler(hit, n)` where `n` counts requests so far (0-based).
pub async fn serve(handler: impl Fn(&Hit, usize) -> Reply + Send + Sync + 'static) -> Mock {
    let handler: Handler = Arc::new(handler);
    let hits = Arc::new(Mutex::new(Vec::new()));
    let counter = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let h = hits.clone();
    let app = axum::Router::new().fallback(move |req: HttpRequest<Body>| {
        let handler = handler.clone();
        let hits = h.clone();
        let counter = counter.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            let query = url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
            let hit = Hit {
                path: parts.uri.path().to_owned(),
                query,
                headers: parts.headers,
                body: String::from_utf8_lossy(&body).into_owned(),
                at: tokio::time::Instant::now(),
            };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            hits.lock().unwrap().push(hit.clone());
            let reply = handler(&hit, n);
            if !reply.delay.is_zero() {
                tokio::time::sleep(reply.delay).await;
            }
            let mut resp = Response::builder().status(StatusCode::from_u16(reply.status).unwrap());
            for (k, v) in &reply.headers {
                resp = resp.header(k, v);
            }
            resp.body(Body::from(reply.body)).unwrap()
        }
    });
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Mock {
        url: Url::parse(&format!("http://{addr}")).unwrap(),
        hits,
    }
}

/// What the raw server does with the n-th connection.
#[derive(Clone, Debug)]
pub enum Raw {
    /// Reset the connection (RST) after reading the request.
    Reset,
    /// Write these bytes, then close.
    Bytes(String),
}

/// A raw TCP server: connection `n` gets `script[min(n, len-1)]`. Returns its URL and a
/// connection counter.
pub async fn serve_raw(script: Vec<Raw>) -> (Url, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let n = c.fetch_add(1, Ordering::SeqCst);
            let action = script[n.min(script.len() - 1)].clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut read = Vec::new();
                while !read.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => read.extend_from_slice(&buf[..k]),
                    }
                }
                match action {
                    Raw::Reset => {
                        let _ = sock.set_zero_linger();
                        drop(sock);
                    }
                    Raw::Bytes(b) => {
                        let _ = sock.write_all(b.as_bytes()).await;
                        let _ = sock.shutdown().await;
                    }
                }
            });
        }
    });
    (Url::parse(&format!("http://{addr}")).unwrap(), count)
}

/// A complete HTTP/1.1 response with a JSON body.
pub fn http_json(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        body.len(),
        body
    )
}

pub fn config(url: &Url) -> ClientConfig {
    let mut c = ClientConfig::new(
        url.clone(),
        Credentials::ApiToken(SecretString::from(TOKEN.to_owned())),
    );
    c.request_timeout = Duration::from_secs(5);
    c
}

pub fn fast_backoff() -> Backoff {
    Backoff {
        base: Duration::from_millis(10),
        max: Duration::from_millis(40),
    }
}

pub fn client(url: &Url) -> Client {
    Client::with_backoff(config(url), fast_backoff()).unwrap()
}

pub fn records(n: std::ops::Range<u64>) -> String {
    let items: Vec<String> = n
        .map(|i| format!(r#"{{"id":{i},"name":"r{i}"}}"#))
        .collect();
    format!("[{}]", items.join(","))
}
