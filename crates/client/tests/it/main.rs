//! Client tests against scripted local servers; no external service.

mod paging;
mod retries;
mod support;
