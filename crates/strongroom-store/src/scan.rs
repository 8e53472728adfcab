//! Ordered, paginated scans: ranges, resume cursors and pages.

use std::fmt;
use std::ops::Bound;

use crate::{Row, StoreError};

/// Largest `limit` a scan accepts; larger limits (and 0) are [`StoreError::InvalidRequest`].
pub const MAX_SCAN_LIMIT: usize = 10_000;

/// A key range of a scan, in `memcmp` order.
///
/// ```
/// use strongroom_store::ScanRange;
///
/// let r = ScanRange::prefix(b"ns/".to_vec());
/// assert!(r.contains(b"ns/a"));
/// assert!(!r.contains(b"nt"));
/// assert!(ScanRange::range(b"a".to_vec(), b"c".to_vec()).contains(b"b"));
/// assert!(ScanRange::all().contains(b""));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ScanRange {
    start: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
}

impl ScanRange {
    /// Every key of the table.
    pub fn all() -> Self {
        Self {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
        }
    }

    /// Every key starting with `prefix` (every key when `prefix` is empty).
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        let prefix = prefix.into();
        let end = match prefix_successor(&prefix) {
            Some(s) => Bound::Excluded(s),
            None => Bound::Unbounded,
        };
        Self {
            start: Bound::Included(prefix),
            end,
        }
    }

    /// Keys `k` with `start <= k < end`.
    pub fn range(start_inclusive: impl Into<Vec<u8>>, end_exclusive: impl Into<Vec<u8>>) -> Self {
        Self {
            start: Bound::Included(start_inclusive.into()),
            end: Bound::Excluded(end_exclusive.into()),
        }
    }

    /// A range from arbitrary bounds.
    pub fn from_bounds(start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> Self {
        Self { start, end }
    }

    /// The lower bound.
    pub fn start(&self) -> Bound<&[u8]> {
        as_slice_bound(&self.start)
    }

    /// The upper bound.
    pub fn end(&self) -> Bound<&[u8]> {
        as_slice_bound(&self.end)
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        after_start(self.start(), key) && before_end(self.end(), key)
    }

    /// The lower bound of a scan resumed after `resume`: the larger of the range's start
    /// and "strictly after the cursor's key". Backends scan from here.
    pub fn resume_start<'a>(&'a self, resume: Option<&'a Cursor>) -> Bound<&'a [u8]> {
        let start = self.start();
        let Some(cursor) = resume else {
            return start;
        };
        let c = cursor.as_bytes();
        match start {
            Bound::Unbounded => Bound::Excluded(c),
            Bound::Included(s) | Bound::Excluded(s) if c >= s => Bound::Excluded(c),
            other => other,
        }
    }
}

impl Default for ScanRange {
    fn default() -> Self {
        Self::all()
    }
}

impl fmt::Debug for ScanRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScanRange")
            .field("start", &self.start().map(hex::encode))
            .field("end", &self.end().map(hex::encode))
            .finish()
    }
}

/// Whether no key can lie between `start` and `end` (so a backend need not query at all).
pub fn bounds_are_empty(start: Bound<&[u8]>, end: Bound<&[u8]>) -> bool {
    match (start, end) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e)) => s >= e,
    }
}

/// Checks a scan `limit`: `1..=MAX_SCAN_LIMIT`.
pub fn check_scan_limit(limit: usize) -> Result<(), StoreError> {
    if limit == 0 || limit > MAX_SCAN_LIMIT {
        Err(StoreError::invalid(format!(
            "scan limit {limit} is outside 1..={MAX_SCAN_LIMIT}; page through larger ranges with the resume cursor"
        )))
    } else {
        Ok(())
    }
}

fn after_start(start: Bound<&[u8]>, key: &[u8]) -> bool {
    match start {
        Bound::Unbounded => true,
        Bound::Included(s) => key >= s,
        Bound::Excluded(s) => key > s,
    }
}

fn before_end(end: Bound<&[u8]>, key: &[u8]) -> bool {
    match end {
        Bound::Unbounded => true,
        Bound::Included(e) => key <= e,
        Bound::Excluded(e) => key < e,
    }
}

fn as_slice_bound(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The smallest key greater than every key starting with `prefix`, if one exists.
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xff {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

/// An opaque token to resume a scan after the last row of a [`Page`].
///
/// It holds the last key returned. Persist it with [`Cursor::as_bytes`] and restore it
/// with [`Cursor::from_bytes`] (for example to resume a long job after a restart); a
/// resumed scan returns the keys strictly after it, even if that key was deleted since.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cursor(Vec<u8>);

impl Cursor {
    /// The cursor resuming after `key`.
    pub fn after(key: impl Into<Vec<u8>>) -> Self {
        Cursor(key.into())
    }

    /// The cursor's persistent form.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Restores a cursor from [`Cursor::as_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Cursor(bytes.to_vec())
    }

    /// The cursor's persistent form, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Cursor")
            .field(&hex::encode(&self.0))
            .finish()
    }
}

/// One page of a scan.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Page {
    /// The rows, in ascending key order.
    pub rows: Vec<Row>,
    /// Where the next page starts; `None` when the range is exhausted.
    pub next: Option<Cursor>,
}

impl Page {
    /// Builds a page from up to `limit + 1` rows fetched in order: the extra row, if
    /// present, only proves that more rows follow and is dropped.
    ///
    /// Backends fetch `limit + 1` rows so that `next` is `None` exactly when nothing
    /// follows.
    pub fn from_overfetch(mut rows: Vec<Row>, limit: usize) -> Self {
        if rows.len() > limit {
            rows.truncate(limit);
            let next = rows.last().map(|r| Cursor(r.key.clone()));
            Page { rows, next }
        } else {
            Page { rows, next: None }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_successor_cases() {
        assert_eq!(prefix_successor(b""), None);
        assert_eq!(prefix_successor(&[0xff, 0xff]), None);
        assert_eq!(prefix_successor(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
    }

    #[test]
    fn prefix_contains() {
        let r = ScanRange::prefix(vec![0x01, 0xff]);
        assert!(r.contains(&[0x01, 0xff]));
        assert!(r.contains(&[0x01, 0xff, 0xff, 0x00]));
        assert!(!r.contains(&[0x02]));
        assert!(!r.contains(&[0x01]));
        assert!(ScanRange::prefix(vec![0xff]).contains(&[0xff, 0xff, 0xff]));
        assert!(ScanRange::prefix(Vec::new()).contains(b""));
    }

    #[test]
    fn resume_start_takes_the_larger_bound() {
        let r = ScanRange::range(b"b".to_vec(), b"z".to_vec());
        let before = Cursor::after(b"a".to_vec());
        let inside = Cursor::after(b"c".to_vec());
        assert_eq!(r.resume_start(None), Bound::Included(&b"b"[..]));
        assert_eq!(r.resume_start(Some(&before)), Bound::Included(&b"b"[..]));
        assert_eq!(r.resume_start(Some(&inside)), Bound::Excluded(&b"c"[..]));
        let at_start = Cursor::after(b"b".to_vec());
        assert_eq!(r.resume_start(Some(&at_start)), Bound::Excluded(&b"b"[..]));
        assert_eq!(
            ScanRange::all().resume_start(Some(&before)),
            Bound::Excluded(&b"a"[..])
        );
    }

    #[test]
    fn empty_bounds() {
        use Bound::{Excluded, Included, Unbounded};
        let (a, b): (&[u8], &[u8]) = (b"a", b"b");
        assert!(!bounds_are_empty(Unbounded, Excluded(a)));
        assert!(!bounds_are_empty(Included(a), Included(a)));
        assert!(bounds_are_empty(Included(a), Excluded(a)));
        assert!(bounds_are_empty(Excluded(a), Included(a)));
        assert!(bounds_are_empty(Included(b), Included(a)));
        assert!(!bounds_are_empty(Excluded(a), Excluded(b)));
    }

    #[test]
    fn limits_and_cursor_bytes() {
        assert!(check_scan_limit(0).is_err());
        assert!(check_scan_limit(1).is_ok());
        assert!(check_scan_limit(MAX_SCAN_LIMIT).is_ok());
        assert!(check_scan_limit(MAX_SCAN_LIMIT + 1).is_err());
        let c = Cursor::after(vec![0, 0xff]);
        assert_eq!(Cursor::from_bytes(c.as_bytes()), c);
        assert_eq!(format!("{c:?}"), "Cursor(\"00ff\")");
        assert_eq!(c.into_bytes(), vec![0, 0xff]);
    }

    #[test]
    fn overfetch_sets_next_only_when_more_rows() {
        let row = |k: u8| Row {
            key: vec![k],
            value: vec![],
            version: 1,
        };
        let p = Page::from_overfetch(vec![row(1), row(2), row(3)], 2);
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.next, Some(Cursor::after(vec![2])));
        let p = Page::from_overfetch(vec![row(1), row(2)], 2);
        assert_eq!(p.next, None);
    }
}
