//! Where a run's pages come from: Pipedrive through the HTTP [`Client`] (with its limiter,
//! budget and retries), or pages held in memory, so the walk, resume and reconciliation are
//! tested without a server.

use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use pipedrive_client::{Client, ClientError, Page, Request};

pub trait PageSource: Send + Sync {
    /// The pages of `request` from `request.start`, ending after the last one or the first
    /// error; the next is requested only when the consumer polls.
    fn pages(&self, request: Request) -> BoxStream<'static, Result<Page, ClientError>>;

    /// One page, at `request.start`.
    fn send<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Page, ClientError>>;
}

/// A page source shared by a run's streams and their read-ahead tasks.
pub type Pages = Arc<dyn PageSource>;

impl PageSource for Client {
    fn pages(&self, request: Request) -> BoxStream<'static, Result<Page, ClientError>> {
        Client::pages(self, request).boxed()
    }

    fn send<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Page, ClientError>> {
        Box::pin(Client::send(self, request))
    }
}

/// The pages a client reads.
pub fn of_client(client: &Client) -> Pages {
    Arc::new(client.clone())
}

/// Lists held in memory, for the walk's own tests.
#[cfg(test)]
pub(crate) mod memory {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use futures::StreamExt;
    use futures::future::BoxFuture;
    use futures::stream::BoxStream;
    use pipedrive_client::{ClientError, Page, PagePosition, Request};
    use serde_json::Value;

    use super::PageSource;

    /// Each path's records, served `page_size` a page, the next page named by a cursor (the
    /// index of its first record), filtered and ordered by change time as v2 lists are when
    /// asked (`updated_since`, `sort_by=update_time`) and to the parents a batch of children
    /// names (`deal_ids`). Requests are recorded; one can be made to fail.
    #[derive(Clone, Default)]
    pub(crate) struct MemoryPages(Arc<Mutex<Lists>>);

    #[derive(Default)]
    struct Lists {
        records: HashMap<String, Vec<Value>>,
        page_size: usize,
        /// Every request answered or failed.
        requested: Vec<Request>,
        /// The request (counted from 1 over this source's life) that fails as a network
        /// failure does once its retries are spent.
        fail_request: Option<usize>,
    }

    impl MemoryPages {
        pub(crate) fn new(page_size: usize) -> MemoryPages {
            let pages = MemoryPages::default();
            pages.lists().page_size = page_size;
            pages
        }

        fn lists(&self) -> std::sync::MutexGuard<'_, Lists> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }

        pub(crate) fn set(&self, path: &str, records: Vec<Value>) {
            self.lists().records.insert(path.to_owned(), records);
        }

        pub(crate) fn fail_request(&self, nth: usize) {
            self.lists().fail_request = Some(nth);
        }

        pub(crate) fn requested(&self) -> Vec<Request> {
            self.lists().requested.clone()
        }

        fn page(&self, request: &Request, position: &PagePosition) -> Result<Page, ClientError> {
            let mut lists = self.lists();
            lists.requested.push(Request {
                start: position.clone(),
                ..request.clone()
            });
            if lists.fail_request == Some(lists.requested.len()) {
                let path = request.path.clone();
                return Err(ClientError::RetriesExhausted {
                    attempts: 3,
                    last: Box::new(ClientError::Network {
                        path,
                        detail: "connection reset".to_owned(),
                    }),
                });
            }
            let query = |name: &str| {
                request
                    .query
                    .iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, value)| value.as_str())
            };
            let changed_at = |record: &Value| record["update_time"].as_str().map(str::to_owned);
            // v2's change filter and its order by change time.
            let mut records: Vec<Value> = lists
                .records
                .get(&request.path)
                .into_iter()
                .flatten()
                .filter(|record| {
                    query("updated_since").is_none_or(|since| {
                        changed_at(record).is_some_and(|at| at.as_str() >= since)
                    })
                })
                // Children of the parents a batch names (`deal_ids=1,2` keeps `deal_id` 1 and 2).
                .filter(|record| {
                    request.query.iter().all(|(key, ids)| {
                        let Some(parent) = key.strip_suffix("_ids") else {
                            return true;
                        };
                        let id = record[format!("{parent}_id")].to_string();
                        ids.split(',').any(|wanted| wanted == id)
                    })
                })
                .cloned()
                .collect();
            if query("sort_by") == Some("update_time") {
                records.sort_by_key(|record| (changed_at(record), record["id"].as_u64()));
            }
            let first = match position {
                PagePosition::First => 0,
                PagePosition::Offset(offset) => *offset as usize,
                PagePosition::Cursor(cursor) => cursor.parse().unwrap_or(0),
            };
            let end = (first + lists.page_size).min(records.len());
            let items = records
                .get(first..end)
                .unwrap_or_default()
                .iter()
                .map(|record| serde_json::value::to_raw_value(record).expect("JSON"))
                .collect();
            Ok(Page {
                items,
                next: (end < records.len()).then(|| PagePosition::Cursor(end.to_string())),
                additional_data: None,
                related_objects: None,
                shifted: false,
            })
        }
    }

    impl PageSource for MemoryPages {
        fn pages(&self, request: Request) -> BoxStream<'static, Result<Page, ClientError>> {
            let source = self.clone();
            let start = request.start.clone();
            futures::stream::unfold(Some(start), move |position| {
                let source = source.clone();
                let request = request.clone();
                async move {
                    let page = source.page(&request, &position?);
                    let next = page.as_ref().ok().and_then(|p| p.next.clone());
                    Some((page, next))
                }
            })
            .boxed()
        }

        fn send<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Page, ClientError>> {
            Box::pin(async move { self.page(request, &request.start) })
        }
    }
}
