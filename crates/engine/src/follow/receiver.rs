//! The HTTP endpoint Pipedrive delivers webhooks to, and `/healthz`. A delivery is only
//! queued here (200 once queued); the follow loop applies the queue. Bad credentials get 401,
//! a body that is no event 400, a full queue 503 (Pipedrive retries it 3 s later): each with a
//! log line, none stops the receiver.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use super::Status;
use super::event::{self, Event};

/// Events waiting for the follow loop. While a safety-net sync runs nothing is applied, so
/// this many deliveries can wait; past it Pipedrive is asked to retry.
pub const QUEUE: usize = 50_000;

/// HTTP Basic credentials every delivery must carry.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

#[derive(Clone)]
struct Inbox {
    queue: mpsc::Sender<Event>,
    /// `Basic base64(user:password)`, as deliveries send it.
    expected: Arc<str>,
    status: Arc<Mutex<Status>>,
}

/// A running receiver; dropping [`Receiver::shutdown`]'s sender stops it.
pub struct Receiver {
    pub address: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Binds `listen` and serves until [`Receiver::shutdown`].
    pub async fn start(
        listen: SocketAddr,
        credentials: &Credentials,
        status: Arc<Mutex<Status>>,
    ) -> std::io::Result<(Receiver, mpsc::Receiver<Event>)> {
        let listener = TcpListener::bind(listen).await?;
        let address = listener.local_addr()?;
        let (queue, events) = mpsc::channel(QUEUE);
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", credentials.user, credentials.password));
        let inbox = Inbox {
            queue,
            expected: format!("Basic {token}").into(),
            status,
        };
        let app = Router::new()
            .route("/healthz", get(health))
            .route("/", post(deliver))
            .route("/{*path}", post(deliver))
            .with_state(inbox);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "the webhook receiver stopped");
            }
        });
        Ok((
            Receiver {
                address,
                stop,
                task,
            },
            events,
        ))
    }

    /// Stops accepting deliveries and waits for the ones being answered.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

fn lock(status: &Mutex<Status>) -> std::sync::MutexGuard<'_, Status> {
    status.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn deliver(State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes) -> Response {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value == &*inbox.expected);
    if !authorized {
        tracing::warn!("a webhook delivery without the right credentials was refused (401)");
        lock(&inbox.status).rejected += 1;
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"pipedrive-sync\"")],
        )
            .into_response();
    }
    let event = match event::parse(&body) {
        Ok(event) => event,
        Err(problem) => {
            tracing::warn!(%problem, "a webhook delivery that is no event was refused (400)");
            let mut status = lock(&inbox.status);
            status.rejected += 1;
            status.gap = true;
            return (StatusCode::BAD_REQUEST, problem.to_string()).into_response();
        }
    };
    match inbox.queue.try_send(event) {
        Ok(()) => {
            lock(&inbox.status).received += 1;
            StatusCode::OK.into_response()
        }
        Err(_) => {
            tracing::warn!(
                "the event queue is full or closing; the delivery was refused (503) for Pipedrive to retry"
            );
            let mut status = lock(&inbox.status);
            status.refused += 1;
            status.gap = true;
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

async fn health(State(inbox): State<Inbox>) -> Response {
    let status = lock(&inbox.status).clone();
    axum::Json(status).into_response()
}
