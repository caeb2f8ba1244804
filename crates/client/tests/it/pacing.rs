use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use pipedrive_client::{Paging, Request};

use crate::support::{Reply, client, serve};

/// N concurrent streams share one client against a server that allows `LIMIT` requests per
/// rolling 2-second window (counted on arrival): no 429s, and close to LIMIT/2 per second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_streams_stay_inside_the_burst_window() {
    const LIMIT: usize = 20;
    const STREAMS: usize = 8;
    const PAGES: usize = 8;
    let window = Duration::from_secs(2);
    let log: Arc<Mutex<VecDeque<Instant>>> = Arc::default();
    let l = log.clone();
    let mock = serve(move |hit, _| {
        let now = Instant::now();
        let mut log = l.lock().unwrap();
        while log
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            log.pop_front();
        }
        let reset = |log: &VecDeque<Instant>| {
            log.front().map_or(2, |t| {
                (window - now.duration_since(*t)).as_secs_f64().ceil() as u64
            })
        };
        if log.len() >= LIMIT {
            return Reply::json(429, r#"{"success":false,"error":"Rate limit exceeded"}"#)
                .header("x-ratelimit-limit", LIMIT)
                .header("x-ratelimit-remaining", 0)
                .header("x-ratelimit-reset", reset(&log));
        }
        log.push_back(now);
        let n: u64 = hit.q("cursor").map_or(0, |c| c.parse().unwrap());
        Reply::ok(format!(
            r#"{{"success":true,"data":[{{"id":{n}}}],"additional_data":{{"next_cursor":"{}"}}}}"#,
            n + 1
        ))
        .header("x-ratelimit-limit", LIMIT)
        .header("x-ratelimit-remaining", LIMIT - log.len())
        .header("x-ratelimit-reset", reset(&log))
    })
    .await;
    let c = client(&mock.url);
    let streams = (0..STREAMS).map(|i| {
        let s = c.pages(Request {
            paging: Paging::Cursor { limit: 1 },
            token_cost: 10,
            ..Request::new(format!("/api/v2/stream{i}"))
        });
        tokio::spawn(async move {
            s.take(PAGES)
                .map(|p| p.expect("page"))
                .collect::<Vec<_>>()
                .await
                .len()
        })
    });
    let done = futures::future::join_all(streams).await;
    assert!(done.into_iter().all(|n| n.unwrap() == PAGES));

    let stats = c.stats();
    assert_eq!(stats.responses_429, 0, "{stats:?}");
    let hits = mock.hits();
    assert_eq!(hits.len(), STREAMS * PAGES);
    let span = hits
        .last()
        .unwrap()
        .at
        .duration_since(hits[0].at)
        .as_secs_f64();
    let rate = (hits.len() - 1) as f64 / span;
    let ceiling = LIMIT as f64 / 2.0;
    eprintln!("achieved {rate:.2} requests/s against a ceiling of {ceiling}/s");
    assert!(
        rate >= 0.9 * ceiling && rate <= ceiling * 1.01,
        "achieved {rate:.2}/s against a ceiling of {ceiling}/s"
    );
    assert_eq!(c.budget().burst_limit, Some(LIMIT as u32));
}
