//! Helpers for backend authors: the checks and conversions every [`Store`] implementation
//! needs, so that backends agree on them instead of each writing its own.
//!
//! A new backend (a crate like `strongroom-sqlite` or `strongroom-postgres`) implements
//! [`Store`] and runs the conformance suite (feature `conformance`). Inside it:
//!
//! - [`check_row`] on every row of [`Store::replace_all`] (the size limits of
//!   [`Batch`](crate::Batch) apply to restored rows too);
//! - [`plan_scan`] at the top of [`ReadView::scan`](crate::ReadView::scan): it checks the
//!   limit, resumes after the cursor, says when the range is empty (no query needed) and
//!   how many rows to fetch; [`Page::from_overfetch`](crate::Page::from_overfetch) turns
//!   the fetched rows into the page;
//! - [`check_log_table`] before reading a log head, [`log_key`] / [`parse_log_key`] for
//!   the 8-byte big-endian keys of log rows;
//! - [`version_from_sql`] / [`version_to_sql`] where row versions live in a signed 64-bit
//!   column;
//! - [`require`] for each compare-and-swap whose row count or read decides.
//!
//! ```
//! use std::ops::Bound;
//! use strongroom_store::backend::{plan_scan, version_from_sql};
//! use strongroom_store::{ScanRange, Table};
//!
//! let range = ScanRange::prefix(b"ns/".to_vec());
//! let plan = plan_scan(&range, None, 100)?.expect("a prefix range is not empty");
//! assert_eq!(plan.start, Bound::Included(&b"ns/"[..]));
//! assert_eq!(plan.fetch, 101); // one more than the limit: it proves that more rows follow
//!
//! assert_eq!(version_from_sql(Table::Meta, 7)?, 7);
//! assert!(version_from_sql(Table::Meta, -1).is_err()); // a corrupt row, not a panic
//! # Ok::<(), strongroom_store::StoreError>(())
//! ```
//!
//! [`Store`]: crate::Store
//! [`Store::replace_all`]: crate::Store::replace_all

use std::ops::Bound;

use crate::{Cursor, ScanRange, StoreError, Table};

pub use crate::batch::{check_row, log_key, parse_log_key};
pub use crate::scan::{bounds_are_empty, check_scan_limit};

/// A row version read from a signed 64-bit column: a negative value is a corrupt row.
pub fn version_from_sql(table: Table, raw: i64) -> Result<u64, StoreError> {
    u64::try_from(raw).map_err(|_| StoreError::Corrupt {
        table,
        reason: format!("negative row version {raw}"),
    })
}

/// A row version for a signed 64-bit column. No stored version exceeds `i64::MAX`, so an
/// expectation of a larger one cannot match: it is a conflict on `key`.
pub fn version_to_sql(table: Table, key: &[u8], version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| StoreError::conflict(table, key))
}

/// `Ok` when a compare-and-swap on `key` held (`ok`), otherwise the conflict error every
/// backend reports for it.
pub fn require(ok: bool, table: Table, key: &[u8]) -> Result<(), StoreError> {
    if ok {
        Ok(())
    } else {
        Err(StoreError::conflict(table, key))
    }
}

/// Refuses a log-head read of a table that is not a log.
pub fn check_log_table(table: Table) -> Result<(), StoreError> {
    if table.is_log() {
        Ok(())
    } else {
        Err(StoreError::invalid(format!(
            "log_head on table {table}, which is not a log"
        )))
    }
}

/// What a scan asks of the backend's query: see [`plan_scan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanPlan<'a> {
    /// Lower bound: the range's start, or strictly after the resume cursor.
    pub start: Bound<&'a [u8]>,
    /// Upper bound: the range's end.
    pub end: Bound<&'a [u8]>,
    /// Rows to fetch: the limit plus one, whose presence proves that more rows follow
    /// ([`Page::from_overfetch`](crate::Page::from_overfetch)). An `i64` for SQL `LIMIT`.
    pub fetch: i64,
}

/// Plans one page of a scan: checks `limit` (`1..=MAX_SCAN_LIMIT`), resumes after
/// `resume`, and returns `None` when no key can lie in the remaining range (answer with
/// an empty page without querying).
pub fn plan_scan<'a>(
    range: &'a ScanRange,
    resume: Option<&'a Cursor>,
    limit: usize,
) -> Result<Option<ScanPlan<'a>>, StoreError> {
    check_scan_limit(limit)?;
    let start = range.resume_start(resume);
    let end = range.end();
    if bounds_are_empty(start, end) {
        return Ok(None);
    }
    Ok(Some(ScanPlan {
        start,
        end,
        fetch: i64::try_from(limit + 1).unwrap_or(i64::MAX),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MAX_SCAN_LIMIT, Page, Row};

    #[test]
    fn versions_convert_both_ways_and_refuse_what_cannot_be_stored() {
        assert_eq!(version_from_sql(Table::Index, 0).unwrap(), 0);
        assert_eq!(
            version_from_sql(Table::Index, i64::MAX).unwrap(),
            u64::MAX / 2
        );
        assert!(matches!(
            version_from_sql(Table::Index, -5),
            Err(StoreError::Corrupt {
                table: Table::Index,
                ..
            })
        ));
        assert_eq!(version_to_sql(Table::Index, b"k", 9).unwrap(), 9);
        assert!(matches!(
            version_to_sql(Table::Index, b"k", u64::MAX),
            Err(StoreError::Conflict { .. })
        ));
    }

    #[test]
    fn require_is_a_conflict_on_the_key() {
        assert!(require(true, Table::Meta, b"k").is_ok());
        assert!(matches!(
            require(false, Table::Meta, b"k"),
            Err(StoreError::Conflict {
                table: Table::Meta,
                ..
            })
        ));
        assert!(check_log_table(Table::Audit).is_ok());
        assert!(check_log_table(Table::Meta).is_err());
    }

    #[test]
    fn scan_plans_check_limits_resume_and_skip_empty_ranges() {
        let all = ScanRange::all();
        assert!(plan_scan(&all, None, 0).is_err());
        assert!(plan_scan(&all, None, MAX_SCAN_LIMIT + 1).is_err());
        let plan = plan_scan(&all, None, MAX_SCAN_LIMIT).unwrap().unwrap();
        assert_eq!(plan.fetch, i64::try_from(MAX_SCAN_LIMIT + 1).unwrap());
        assert_eq!((plan.start, plan.end), (Bound::Unbounded, Bound::Unbounded));

        let range = ScanRange::range(b"a".to_vec(), b"c".to_vec());
        let page = Page::from_overfetch(
            vec![
                Row {
                    key: b"b".to_vec(),
                    value: vec![],
                    version: 1,
                };
                2
            ],
            1,
        );
        let cursor = page.next.expect("an over-fetched page has a cursor");
        let resumed = plan_scan(&range, Some(&cursor), 10).unwrap().unwrap();
        assert_eq!(resumed.start, Bound::Excluded(&b"b"[..]));
        assert_eq!(resumed.end, Bound::Excluded(&b"c"[..]));

        let empty = ScanRange::range(b"c".to_vec(), b"a".to_vec());
        assert_eq!(plan_scan(&empty, None, 10).unwrap(), None);
    }
}
