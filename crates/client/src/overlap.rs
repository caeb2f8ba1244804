//! Offset walks that notice when the list moved under them.
//!
//! A v1 `start`/`limit` walk reads positions, not records: a record deleted (or, in an
//! `update_time`-sorted list such as `/v1/recents`, updated) ahead of the reader between two
//! pages moves every later record one place back, and the one at the page boundary is never
//! read. Each page after the first therefore starts [`OVERLAP`] records early; the records
//! already read are dropped by identity, and if none of the previous page's last records is
//! found again the list moved further than the overlap covers and the page says so
//! ([`Page::shifted`]), so a reader never takes such a walk as complete.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::page::{Page, PagePosition};

/// Records each page re-reads of the previous one: a page of 500 reads 1% more records and
/// survives up to this many records leaving the list ahead of it between two requests. Small
/// pages re-read a tenth of a page at most, so every request still moves forward.
pub const OVERLAP: u64 = 5;

/// The previous page's last records, by identity.
pub(crate) struct Overlap {
    size: usize,
    tail: Vec<String>,
}

impl Overlap {
    /// The overlap of an offset walk with pages of `limit` records.
    pub(crate) fn new(limit: u32) -> Overlap {
        Overlap {
            size: OVERLAP.min(u64::from(limit / 10)) as usize,
            tail: Vec::new(),
        }
    }

    /// Where to ask for the page at `position`: a few records early once a page was read.
    pub(crate) fn request_position(&self, position: &PagePosition) -> PagePosition {
        match position {
            PagePosition::Offset(start) if !self.tail.is_empty() => {
                PagePosition::Offset(start.saturating_sub(self.tail.len() as u64))
            }
            other => other.clone(),
        }
    }

    /// Drops the records `page` re-read, flags the page when the previous page's end is not in
    /// it, and remembers this page's end for the next one.
    pub(crate) fn splice(&mut self, page: &mut Page) {
        if !self.tail.is_empty() {
            // One pass, each record's identity read once: the newest of the previous page's
            // records found here is the anchor, and finding the very last one ends the search.
            let newest = self.tail.len() - 1;
            let mut anchor: Option<(usize, usize)> = None;
            for (index, item) in page.items.iter().enumerate() {
                let id = identity(item);
                if let Some(rank) = self.tail.iter().position(|seen| *seen == id)
                    && anchor.is_none_or(|(best, _)| rank > best)
                {
                    anchor = Some((rank, index));
                    if rank == newest {
                        break;
                    }
                }
            }
            match anchor {
                Some((_, index)) => {
                    page.items.drain(..=index);
                }
                None if !page.items.is_empty() => page.shifted = true,
                None => {}
            }
        }
        let keep = page.items.len().min(self.size);
        let mut tail: Vec<String> = page.items[page.items.len() - keep..]
            .iter()
            .map(|item| identity(item))
            .collect();
        // A page that was all re-read keeps the older anchors.
        if tail.is_empty() {
            tail = std::mem::take(&mut self.tail);
        }
        self.tail = tail;
    }
}

#[derive(Deserialize)]
struct Identity<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    item: Option<&'a RawValue>,
}

/// What tells a record from the others in a list: its `id` (with the `item` kind in a mixed
/// list such as `/v1/recents`), or its whole text when it has no id.
fn identity(raw: &RawValue) -> String {
    match serde_json::from_str::<Identity<'_>>(raw.get()) {
        Ok(Identity { id: Some(id), item }) => {
            format!("{}:{}", item.map_or("", RawValue::get), id.get())
        }
        _ => raw.get().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(ids: &[u64]) -> Page {
        Page {
            items: ids
                .iter()
                .map(|id| RawValue::from_string(format!(r#"{{"id":{id}}}"#)).unwrap())
                .collect(),
            next: None,
            additional_data: None,
            related_objects: None,
            shifted: false,
        }
    }

    fn ids(page: &Page) -> Vec<String> {
        page.items.iter().map(|i| i.get().to_owned()).collect()
    }

    #[test]
    fn small_pages_overlap_by_a_tenth_at_most() {
        assert_eq!(Overlap::new(500).size, 5);
        assert_eq!(Overlap::new(20).size, 2);
        let mut overlap = Overlap::new(2);
        overlap.splice(&mut page(&[1, 2]));
        assert_eq!(
            overlap.request_position(&PagePosition::Offset(2)),
            PagePosition::Offset(2)
        );
    }

    #[test]
    fn asks_early_once_a_page_was_read() {
        let mut overlap = Overlap::new(500);
        assert_eq!(
            overlap.request_position(&PagePosition::Offset(10)),
            PagePosition::Offset(10)
        );
        overlap.splice(&mut page(&(1..=10).collect::<Vec<_>>()));
        assert_eq!(
            overlap.request_position(&PagePosition::Offset(10)),
            PagePosition::Offset(5)
        );
    }

    #[test]
    fn a_still_list_reads_each_record_once() {
        let mut overlap = Overlap::new(500);
        overlap.splice(&mut page(&[1, 2, 3, 4, 5, 6, 7, 8]));
        // Asked from position 3: records 4..=8 again, then new ones.
        let mut next = page(&[4, 5, 6, 7, 8, 9, 10]);
        overlap.splice(&mut next);
        assert_eq!(ids(&next), [r#"{"id":9}"#, r#"{"id":10}"#]);
        assert!(!next.shifted);
    }

    #[test]
    fn records_leaving_ahead_of_the_reader_lose_nothing() {
        let mut overlap = Overlap::new(500);
        overlap.splice(&mut page(&[1, 2, 3, 4, 5, 6, 7, 8]));
        // Records 2 and 8 were deleted: everything moved two places back.
        let mut next = page(&[6, 7, 9, 10, 11, 12, 13]);
        overlap.splice(&mut next);
        assert_eq!(next.items.len(), 5);
        assert_eq!(next.items[0].get(), r#"{"id":9}"#);
        assert!(!next.shifted);
    }

    #[test]
    fn a_move_past_the_overlap_is_flagged() {
        let mut overlap = Overlap::new(500);
        overlap.splice(&mut page(&[1, 2, 3, 4, 5, 6, 7, 8]));
        let mut next = page(&[20, 21, 22]);
        overlap.splice(&mut next);
        assert!(next.shifted);
        assert_eq!(next.items.len(), 3);
    }

    #[test]
    fn mixed_lists_tell_kinds_apart() {
        let deal = RawValue::from_string(r#"{"item":"deal","id":1}"#.into()).unwrap();
        let person = RawValue::from_string(r#"{"item":"person","id":1}"#.into()).unwrap();
        assert_ne!(identity(&deal), identity(&person));
    }
}
