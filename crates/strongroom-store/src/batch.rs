//! Write batches: puts, deletes and log appends committed atomically.

use std::borrow::Cow;
use std::fmt;

use crate::{Generation, StoreError, Table};

/// Longest key a store accepts, in bytes.
///
/// Every backend enforces the same limit (PostgreSQL's B-tree index caps an entry near
/// 2.7 KB), so code written against one backend works on all of them.
pub const MAX_KEY_LEN: usize = 1024;

/// Largest value a store accepts, in bytes (256 MiB).
pub const MAX_VALUE_LEN: usize = 256 << 20;

/// The compare-and-swap precondition of a put or delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Expect {
    /// No precondition: write whatever is there.
    #[default]
    Any,
    /// The row must not exist.
    Absent,
    /// The row must exist with exactly this version.
    Version(u64),
}

impl Expect {
    /// Whether a row whose current version is `current` (`None`: absent) satisfies this
    /// precondition.
    pub fn holds(self, current: Option<u64>) -> bool {
        match self {
            Expect::Any => true,
            Expect::Absent => current.is_none(),
            Expect::Version(v) => current == Some(v),
        }
    }
}

/// One operation of a [`Batch`].
#[derive(Clone, PartialEq, Eq)]
pub enum Op {
    /// Insert or replace `key` in `table` if `expect` holds. The row's version becomes 1
    /// when it did not exist, else its previous version + 1.
    Put {
        /// Target table (not a log).
        table: Table,
        /// Row key.
        key: Vec<u8>,
        /// New value.
        value: Vec<u8>,
        /// Precondition.
        expect: Expect,
    },
    /// Remove `key` from `table` if `expect` holds (removing a missing row with
    /// [`Expect::Any`] or [`Expect::Absent`] is a no-op). A row put again after a delete
    /// starts over at version 1.
    Delete {
        /// Target table (not a log).
        table: Table,
        /// Row key.
        key: Vec<u8>,
        /// Precondition.
        expect: Expect,
    },
    /// Assert that `key` in `table` (any table, logs included) satisfies `expect`, without
    /// writing it. The row cannot change between the check and the commit of the batch,
    /// so a batch can depend on a row it does not write: "commit only if the membership
    /// log has not moved", for example (`Expect::Absent` on the log's next sequence number).
    Check {
        /// Table of the row.
        table: Table,
        /// Row key.
        key: Vec<u8>,
        /// The condition.
        expect: Expect,
    },
    /// Append a log row keyed by `seq.to_be_bytes()`.
    ///
    /// Valid only when no row at `seq` exists and (`seq == 0` or a row at `seq - 1`
    /// exists): appends happen only at the current head, with no forks and no gaps. Of
    /// racing appends at the same `seq` exactly one wins; the others get
    /// [`StoreError::Conflict`].
    Append {
        /// Target log table ([`Table::is_log`]).
        table: Table,
        /// Sequence number of the new entry.
        seq: u64,
        /// The entry.
        value: Vec<u8>,
    },
}

/// Checks one row of [`Store::replace_all`](crate::Store::replace_all) against the size
/// limits every backend enforces.
pub fn check_row(key: &[u8], value: &[u8]) -> Result<(), StoreError> {
    check_key(key)?;
    check_value(value)
}

impl Op {
    /// The table the operation writes.
    pub fn table(&self) -> Table {
        match self {
            Op::Put { table, .. }
            | Op::Delete { table, .. }
            | Op::Check { table, .. }
            | Op::Append { table, .. } => *table,
        }
    }

    /// The row key the operation writes (`seq.to_be_bytes()` for an append).
    pub fn key(&self) -> Cow<'_, [u8]> {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } | Op::Check { key, .. } => {
                Cow::Borrowed(key)
            }
            Op::Append { seq, .. } => Cow::Owned(log_key(*seq).to_vec()),
        }
    }

    /// Checks the operation against the store's rules (key and value sizes, appends only
    /// to log tables, puts and deletes only to other tables).
    pub fn validate(&self) -> Result<(), StoreError> {
        match self {
            Op::Put {
                table, key, value, ..
            } => {
                check_not_log(*table, "put")?;
                check_key(key)?;
                check_value(value)
            }
            Op::Delete { table, key, .. } => {
                check_not_log(*table, "delete")?;
                check_key(key)
            }
            Op::Check { key, .. } => check_key(key),
            Op::Append { table, value, .. } => {
                if !table.is_log() {
                    return Err(StoreError::invalid(format!(
                        "append to table {table}, which is not a log; use put"
                    )));
                }
                check_value(value)
            }
        }
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Put {
                table,
                key,
                value,
                expect,
            } => f
                .debug_struct("Put")
                .field("table", table)
                .field("key", &hex::encode(key))
                .field("value_len", &value.len())
                .field("expect", expect)
                .finish(),
            Op::Delete { table, key, expect } => f
                .debug_struct("Delete")
                .field("table", table)
                .field("key", &hex::encode(key))
                .field("expect", expect)
                .finish(),
            Op::Check { table, key, expect } => f
                .debug_struct("Check")
                .field("table", table)
                .field("key", &hex::encode(key))
                .field("expect", expect)
                .finish(),
            Op::Append { table, seq, value } => f
                .debug_struct("Append")
                .field("table", table)
                .field("seq", seq)
                .field("value_len", &value.len())
                .finish(),
        }
    }
}

fn check_not_log(table: Table, what: &str) -> Result<(), StoreError> {
    if table.is_log() {
        Err(StoreError::invalid(format!(
            "{what} on log table {table}; logs only take appends at the head"
        )))
    } else {
        Ok(())
    }
}

pub(crate) fn check_key(key: &[u8]) -> Result<(), StoreError> {
    if key.len() > MAX_KEY_LEN {
        Err(StoreError::invalid(format!(
            "key of {} bytes exceeds the maximum of {MAX_KEY_LEN}",
            key.len()
        )))
    } else {
        Ok(())
    }
}

pub(crate) fn check_value(value: &[u8]) -> Result<(), StoreError> {
    if value.len() > MAX_VALUE_LEN {
        Err(StoreError::invalid(format!(
            "value of {} bytes exceeds the maximum of {MAX_VALUE_LEN}",
            value.len()
        )))
    } else {
        Ok(())
    }
}

/// The key of log entry `seq`: its big-endian bytes, so keys sort by sequence number.
pub fn log_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Parses a log key read from `table` back into its sequence number.
///
/// Returns [`StoreError::Corrupt`] when the key is not 8 bytes long.
pub fn parse_log_key(table: Table, key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| StoreError::Corrupt {
        table,
        reason: format!("log key of {} bytes, expected 8", key.len()),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// A list of operations committed atomically by [`Store::commit`](crate::Store::commit).
///
/// Operations apply in order, each seeing the effect of the ones before it (so a batch
/// may put a key and then put it again with `Expect::Version(1)`). If any precondition
/// fails, nothing of the batch is applied.
///
/// ```
/// use strongroom_store::{Batch, Expect, Table};
///
/// let mut batch = Batch::new();
/// batch
///     .put(Table::Deks, b"rec-1", b"wrapped".to_vec(), Expect::Absent)
///     .put(Table::Bodies, b"rec-1", vec![0u8; 64], Expect::Any)
///     .append(Table::Audit, 0, b"put rec-1".to_vec());
/// assert_eq!(batch.len(), 3);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<Op>,
    generation: Option<Generation>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `n` operations.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            ops: Vec::with_capacity(n),
            generation: None,
        }
    }

    /// Makes the batch apply only while the store is still in `generation` (the one the
    /// reads it was built from saw): after a [`Store::replace_all`](crate::Store::replace_all)
    /// it fails with [`StoreError::GenerationChanged`] and nothing is applied.
    pub fn require_generation(&mut self, generation: Generation) -> &mut Self {
        self.generation = Some(generation);
        self
    }

    /// The generation the batch requires, if any.
    pub fn generation(&self) -> Option<Generation> {
        self.generation
    }

    /// Adds a put of `key` → `value` in `table` under precondition `expect`.
    pub fn put(
        &mut self,
        table: Table,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        expect: Expect,
    ) -> &mut Self {
        self.ops.push(Op::Put {
            table,
            key: key.into(),
            value: value.into(),
            expect,
        });
        self
    }

    /// Adds a delete of `key` in `table` under precondition `expect`.
    pub fn delete(&mut self, table: Table, key: impl Into<Vec<u8>>, expect: Expect) -> &mut Self {
        self.ops.push(Op::Delete {
            table,
            key: key.into(),
            expect,
        });
        self
    }

    /// Adds a check that `key` in `table` satisfies `expect` (see [`Op::Check`]).
    pub fn check(&mut self, table: Table, key: impl Into<Vec<u8>>, expect: Expect) -> &mut Self {
        self.ops.push(Op::Check {
            table,
            key: key.into(),
            expect,
        });
        self
    }

    /// Adds an append of entry `seq` to log `table` (see [`Op::Append`]).
    pub fn append(&mut self, table: Table, seq: u64, value: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Append {
            table,
            seq,
            value: value.into(),
        });
        self
    }

    /// Adds an already built operation.
    pub fn push(&mut self, op: Op) -> &mut Self {
        self.ops.push(op);
        self
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch has no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Removes every operation and the generation requirement, keeping the allocation.
    pub fn clear(&mut self) {
        self.ops.clear();
        self.generation = None;
    }

    /// Validates every operation ([`Op::validate`]); backends call this before writing.
    pub fn validate(&self) -> Result<(), StoreError> {
        self.ops.iter().try_for_each(Op::validate)
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("ops", &self.ops)
            .field("generation", &self.generation)
            .finish()
    }
}

/// What a successful [`Store::commit`](crate::Store::commit) did.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Committed {
    /// Per operation, in batch order: the row's new version for a put, 1 for an append,
    /// 0 for a delete.
    pub versions: Vec<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_keeps_order_and_accessors() {
        let mut b = Batch::with_capacity(3);
        assert!(b.is_empty());
        b.put(Table::Meta, "k", "v", Expect::Absent)
            .delete(Table::Index, [1u8, 2], Expect::Version(4))
            .append(Table::Audit, 258, vec![9]);
        assert_eq!(b.len(), 3);
        assert_eq!(b.ops()[0].table(), Table::Meta);
        assert_eq!(&*b.ops()[0].key(), b"k");
        assert_eq!(&*b.ops()[1].key(), &[1, 2]);
        assert_eq!(&*b.ops()[2].key(), &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert!(b.validate().is_ok());
        let dbg = format!("{b:?}");
        assert!(dbg.contains("value_len: 1"), "{dbg}");
        b.clear();
        assert!(b.is_empty());
    }

    #[test]
    fn validation_rules() {
        let mut b = Batch::new();
        b.put(Table::Audit, "k", "v", Expect::Any);
        assert!(matches!(
            b.validate(),
            Err(StoreError::InvalidRequest { .. })
        ));
        let mut b = Batch::new();
        b.delete(Table::MemberLog, "k", Expect::Any);
        assert!(b.validate().is_err());
        let mut b = Batch::new();
        b.append(Table::Meta, 0, "v");
        assert!(b.validate().is_err());
        let mut b = Batch::new();
        b.put(Table::Meta, vec![0u8; MAX_KEY_LEN + 1], "v", Expect::Any);
        assert!(b.validate().is_err());
        let mut b = Batch::new();
        b.put(Table::Meta, vec![0u8; MAX_KEY_LEN], "", Expect::Any);
        assert!(b.validate().is_ok());
    }

    #[test]
    fn log_keys_roundtrip_and_reject_bad_lengths() {
        for seq in [0, 1, 255, 256, u64::MAX] {
            assert_eq!(parse_log_key(Table::Audit, &log_key(seq)).unwrap(), seq);
        }
        assert!(matches!(
            parse_log_key(Table::Audit, &[1, 2, 3]),
            Err(StoreError::Corrupt {
                table: Table::Audit,
                ..
            })
        ));
        assert!(log_key(1) < log_key(256));
    }
}
