//! The fixed set of named tables a store holds.

use std::fmt;

/// One of the named tables of a store.
///
/// Every table maps byte keys, ordered by `memcmp`, to versioned byte values. Two tables
/// are *logs* ([`Table::is_log`]): their rows are keyed by a sequence number
/// (`u64` big-endian) and can only be appended at the head (see [`Op::Append`]).
///
/// [`Op::Append`]: crate::Op::Append
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Vault metadata: ids, epochs, rotation progress, settings.
    Meta,
    /// Keyholder records: each wraps the current vault key.
    Keyholders,
    /// Member identities (public halves and sealed private halves).
    Identities,
    /// Vault keys wrapped to members.
    Wraps,
    /// Sealed record bodies (the large values).
    Bodies,
    /// Wrapped data-encryption keys, one per record version.
    Deks,
    /// Blind name index.
    Index,
    /// Resumable background jobs (rotation, re-encryption).
    Jobs,
    /// The membership log (append-only).
    MemberLog,
    /// The audit log (append-only).
    Audit,
}

impl Table {
    /// Every table, in declaration order.
    pub const ALL: [Table; 10] = [
        Table::Meta,
        Table::Keyholders,
        Table::Identities,
        Table::Wraps,
        Table::Bodies,
        Table::Deks,
        Table::Index,
        Table::Jobs,
        Table::MemberLog,
        Table::Audit,
    ];

    /// The table's stable snake_case name (`"meta"`, `"member_log"`, ...).
    ///
    /// Backends derive their physical table names from it, so it never changes.
    pub fn name(self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::Keyholders => "keyholders",
            Table::Identities => "identities",
            Table::Wraps => "wraps",
            Table::Bodies => "bodies",
            Table::Deks => "deks",
            Table::Index => "index",
            Table::Jobs => "jobs",
            Table::MemberLog => "member_log",
            Table::Audit => "audit",
        }
    }

    /// Whether the table is an append-only log ([`Table::MemberLog`], [`Table::Audit`]).
    pub fn is_log(self) -> bool {
        matches!(self, Table::MemberLog | Table::Audit)
    }

    /// Position of the table in [`Table::ALL`] (`0..10`), handy for per-table arrays.
    pub fn index(self) -> usize {
        match self {
            Table::Meta => 0,
            Table::Keyholders => 1,
            Table::Identities => 2,
            Table::Wraps => 3,
            Table::Bodies => 4,
            Table::Deks => 5,
            Table::Index => 6,
            Table::Jobs => 7,
            Table::MemberLog => 8,
            Table::Audit => 9,
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::Table;

    #[test]
    fn names_are_unique_snake_case_and_indexed() {
        let mut names: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
        for (i, t) in Table::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
            assert!(t.name().chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            assert_eq!(t.to_string(), t.name());
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Table::ALL.len());
    }

    #[test]
    fn only_the_two_logs_are_logs() {
        let logs: Vec<Table> = Table::ALL.into_iter().filter(|t| t.is_log()).collect();
        assert_eq!(logs, vec![Table::MemberLog, Table::Audit]);
    }
}
