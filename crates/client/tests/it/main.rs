//! Client tests against scripted local servers; no external service.

mod oauth;
mod pacing;
mod paging;
mod retries;
mod secrets;
mod support;
