use futures::StreamExt;
use pipedrive_client::{PagePosition, Paging, Request};

use crate::support::{Reply, TOKEN, client, records, serve};

fn offset_request(limit: u32) -> Request {
    Request {
        paging: Paging::Offset { limit },
        token_cost: 20,
        ..Request::new("/api/v1/notes")
    }
}

#[tokio::test]
async fn v1_offset_paging_follows_next_start() {
    let mock = serve(|hit, _| {
        let start: u64 = hit.q("start").unwrap().parse().unwrap();
        match start {
            0 => Reply::ok(format!(
                r#"{{"success":true,"data":{},"additional_data":{{"pagination":{{"start":0,"limit":2,"more_items_in_collection":true,"next_start":2}}}}}}"#,
                records(0..2)
            )),
            2 => Reply::ok(format!(
                r#"{{"success":true,"data":{},"additional_data":{{"pagination":{{"start":2,"limit":2,"more_items_in_collection":true,"next_start":4}}}}}}"#,
                records(2..4)
            )),
            _ => Reply::ok(format!(
                r#"{{"success":true,"data":{},"additional_data":{{"pagination":{{"start":4,"limit":2,"more_items_in_collection":false}}}}}}"#,
                records(4..5)
            )),
        }
    })
    .await;
    let c = client(&mock.url);
    let pages: Vec<_> = c.pages(offset_request(2)).collect().await;
    let pages: Vec<_> = pages.into_iter().map(Result::unwrap).collect();
    assert_eq!(pages.len(), 3);
    let ids: Vec<String> = pages
        .iter()
        .flat_map(|p| p.items.iter().map(|r| r.get().to_owned()))
        .collect();
    assert_eq!(ids.len(), 5);
    assert_eq!(ids[4], r#"{"id":4,"name":"r4"}"#);
    assert_eq!(pages[0].next, Some(PagePosition::Offset(2)));
    assert_eq!(pages[2].next, None);

    let hits = mock.hits();
    assert_eq!(hits[1].q("start"), Some("2"));
    assert_eq!(hits[1].q("limit"), Some("2"));
    for h in &hits {
        assert_eq!(h.path, "/api/v1/notes");
        assert_eq!(h.headers["x-api-token"], TOKEN);
        assert!(h.q("api_token").is_none());
    }
    let stats = c.stats();
    assert_eq!(stats.requests, 3);
    assert_eq!(stats.tokens_spent, 60);
    assert_eq!(stats.per_path["/api/v1/notes"].requests, 3);
}

#[tokio::test]
async fn v1_missing_next_start_and_null_data_end_the_listing() {
    let mock = serve(|hit, _| match hit.q("start") {
        Some("0") => Reply::ok(format!(
            r#"{{"success":true,"data":{},"additional_data":{{"pagination":{{"more_items_in_collection":true}}}}}}"#,
            records(0..2)
        )),
        _ => Reply::ok(r#"{"success":true,"data":null,"additional_data":{"pagination":{"more_items_in_collection":false}}}"#),
    })
    .await;
    let c = client(&mock.url);
    let pages: Vec<_> = c.pages(offset_request(2)).collect().await;
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].as_ref().unwrap().items.len(), 2);

    let resumed = Request {
        start: PagePosition::Offset(10),
        ..offset_request(2)
    };
    let page = c.send(&resumed).await.unwrap();
    assert!(page.items.is_empty());
    assert!(page.next.is_none());
    assert_eq!(mock.hits()[1].q("start"), Some("10"));
}

#[tokio::test]
async fn v1_flat_pagination_quirk() {
    let mock = serve(|hit, _| match hit.q("start") {
        Some("0") => Reply::ok(format!(
            r#"{{"success":true,"data":{},"additional_data":{{"start":0,"limit":2,"more_items_in_collection":true,"next_start":2}}}}"#,
            records(0..2)
        )),
        _ => Reply::ok(format!(
            r#"{{"success":true,"data":{},"additional_data":{{"start":2,"more_items_in_collection":false}}}}"#,
            records(2..3)
        )),
    })
    .await;
    let pages: Vec<_> = client(&mock.url).pages(offset_request(2)).collect().await;
    assert_eq!(pages.len(), 2);
}

#[tokio::test]
async fn v2_cursor_paging_and_resume() {
    let mock = serve(|hit, _| match hit.q("cursor") {
        None => Reply::ok(format!(
            r#"{{"success":true,"data":{},"additional_data":{{"next_cursor":"c1"}}}}"#,
            records(0..3)
        )),
        Some("c1") => Reply::ok(format!(
            r#"{{"success":true,"data":{},"additional_data":{{"next_cursor":"c2"}}}}"#,
            records(3..6)
        )),
        Some(_) => Reply::ok(format!(
            r#"{{"success":true,"data":{},"additional_data":{{"next_cursor":null}}}}"#,
            records(6..7)
        )),
    })
    .await;
    let c = client(&mock.url);
    let req = Request {
        paging: Paging::Cursor { limit: 3 },
        token_cost: 10,
        query: vec![("sort_by".into(), "update_time".into())],
        ..Request::new("/api/v2/deals")
    };
    let pages: Vec<_> = c.pages(req.clone()).map(Result::unwrap).collect().await;
    assert_eq!(pages.iter().map(|p| p.items.len()).sum::<usize>(), 7);
    assert_eq!(pages[1].next, Some(PagePosition::Cursor("c2".into())));
    let hits = mock.hits();
    assert_eq!(hits[0].q("limit"), Some("3"));
    assert_eq!(hits[0].q("sort_by"), Some("update_time"));
    assert_eq!(hits[1].q("cursor"), Some("c1"));

    let resumed = Request {
        start: PagePosition::Cursor("c2".into()),
        ..req
    };
    let pages: Vec<_> = c.pages(resumed).collect().await;
    assert_eq!(pages.len(), 1);
    assert_eq!(c.stats().tokens_spent, 40);
}

#[tokio::test]
async fn pages_are_fetched_only_when_polled() {
    let mock = serve(|hit, _| {
        let n: u64 = hit.q("cursor").map_or(0, |c| c.parse().unwrap());
        Reply::ok(format!(
            r#"{{"success":true,"data":{},"additional_data":{{"next_cursor":"{}"}}}}"#,
            records(n..n + 1),
            n + 1
        ))
    })
    .await;
    let c = client(&mock.url);
    let mut stream = Box::pin(c.pages(Request {
        paging: Paging::Cursor { limit: 1 },
        ..Request::new("/api/v2/persons")
    }));
    assert_eq!(mock.count(), 0, "nothing is sent before the first poll");
    stream.next().await.unwrap().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(mock.count(), 1, "no prefetch");
    stream.next().await.unwrap().unwrap();
    assert_eq!(mock.count(), 2);
}

#[tokio::test]
async fn items_path_and_single_object() {
    let mock = serve(|hit, _| match hit.path.as_str() {
        "/api/v1/goals/find" => {
            Reply::ok(r#"{"success":true,"data":{"goals":[{"id":"g1"},{"id":"g2"}]}}"#)
        }
        _ => Reply::ok(r#"{"success":true,"data":{"id":1,"company_domain":"acme"}}"#),
    })
    .await;
    let c = client(&mock.url);
    let goals = c
        .send(&Request {
            items_path: Some("goals".into()),
            ..Request::new("/api/v1/goals/find")
        })
        .await
        .unwrap();
    assert_eq!(goals.items.len(), 2);
    assert_eq!(goals.items[1].get(), r#"{"id":"g2"}"#);
    let me = c.send(&Request::new("/api/v1/users/me")).await.unwrap();
    assert_eq!(me.items.len(), 1);
}

#[tokio::test]
async fn base_url_path_is_kept() {
    let mock = serve(|_, _| Reply::ok(r#"{"success":true,"data":[]}"#)).await;
    let base = mock.url.join("/proxy/").unwrap();
    client(&base)
        .send(&Request::new("/api/v2/stages"))
        .await
        .unwrap();
    assert_eq!(mock.hits()[0].path, "/proxy/api/v2/stages");
}
