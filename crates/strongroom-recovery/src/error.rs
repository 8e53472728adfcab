//! Errors of reading keys typed or supplied by people and applications.
//!
//! Wrapping and unwrapping fail with [`KeyholderError`](crate::KeyholderError); reading a
//! recovery key or a raw KEK from text fails with the enums here, which convert into
//! [`KeyholderError::InvalidKeyText`](crate::KeyholderError::InvalidKeyText). None of them
//! repeats any part of the input: the input is a secret.

use std::path::PathBuf;

use crate::KeyholderError;

/// A recovery key (text or word form) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseRecoveryKeyError {
    /// The text does not start with the recovery-key prefix.
    #[error(
        "not a strongroom recovery key: a recovery key starts with SRK1 (check the first group)"
    )]
    NotARecoveryKey,
    /// The input is a list of words: the 24-word form.
    #[error("this looks like the 24-word form of a recovery key: enter it as words")]
    LooksLikeWords,
    /// The text form has a version this build does not read.
    #[error(
        "recovery key format version {version} is not supported (this strongroom reads version 1): upgrade strongroom"
    )]
    UnsupportedVersion {
        /// The version found.
        version: u8,
    },
    /// The text has the wrong number of characters.
    #[error("{}", wrong_length(*.got, .groups))]
    WrongLength {
        /// Characters found (prefix included, dashes and spaces excluded).
        got: usize,
        /// The group(s) where a character is missing or extra, when that could be located.
        groups: Vec<usize>,
    },
    /// A character that the recovery-key alphabet never uses.
    #[error(
        "group {group} contains a character that recovery keys never use (after the SRK1 prefix there is no B, I, O or 1): re-type that group"
    )]
    InvalidCharacter {
        /// The group (1-based, 5 characters each, the first being `SRK1Q`).
        group: usize,
    },
    /// The checksum does not match: a typo.
    #[error("{}", checksum(.groups))]
    Checksum {
        /// The group(s) holding the typo, when it could be located (one mistyped character
        /// or two swapped neighbours); empty otherwise.
        groups: Vec<usize>,
    },
    /// The key id inside the text does not belong to the key.
    #[error(
        "the key id inside this recovery key does not match the key: this text was not produced by strongroom"
    )]
    KeyIdMismatch,
    /// The text decodes, but not in the one canonical form strongroom writes.
    #[error(
        "this recovery key is not in canonical form (non-zero padding bits): it was not produced by strongroom"
    )]
    NonCanonical,
    /// A recovery key id (`ABCD-1234`) could not be read.
    #[error("a recovery key id is 8 hexadecimal characters, like ABCD-1234")]
    InvalidKeyId,
    /// The word form has the wrong number of words.
    #[error("a recovery phrase has 24 words; this one has {got}")]
    WrongWordCount {
        /// Words found.
        got: usize,
    },
    /// A word is not in the BIP 39 English list.
    #[error("word {position} is not in the BIP 39 English word list: check its spelling")]
    UnknownWord {
        /// 1-based position of the word.
        position: usize,
    },
    /// The words' checksum does not match.
    #[error(
        "the 24 words do not check out: a word is wrong or two words are swapped; compare each word with your copy"
    )]
    WordChecksum,
}

fn list(groups: &[usize]) -> String {
    match groups {
        [] => String::new(),
        [g] => format!("group {g}"),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(ToString::to_string).collect();
            format!("groups {} and {last}", init.join(", "))
        }
    }
}

fn wrong_length(got: usize, groups: &[usize]) -> String {
    let expected = crate::recovery_key::TEXT_LEN;
    let what = if got < expected { "missing" } else { "extra" };
    let base =
        format!("a recovery key has {expected} characters (14 groups of 5), this one has {got}");
    if groups.is_empty() {
        base
    } else {
        format!("{base}: a character is {what} in {}", list(groups))
    }
}

fn checksum(groups: &[usize]) -> String {
    if groups.is_empty() {
        "the recovery key's checksum does not match: more than one character is wrong; re-type the key carefully".to_owned()
    } else {
        format!(
            "the recovery key's checksum does not match: there is a typo in {}; re-type it",
            list(groups)
        )
    }
}

impl From<ParseRecoveryKeyError> for KeyholderError {
    fn from(e: ParseRecoveryKeyError) -> Self {
        KeyholderError::InvalidKeyText(e.to_string())
    }
}

/// A raw key-encryption key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadKekError {
    /// Nothing but whitespace.
    #[error("the key-encryption key is empty")]
    Empty,
    /// Looked like hex, but is not.
    #[error("the key-encryption key is not valid hexadecimal")]
    NotHex,
    /// Neither hex nor base64.
    #[error("the key-encryption key is not valid base64 (standard or URL-safe) or hexadecimal")]
    NotBase64,
    /// Decoded, but not to 32 bytes.
    #[error(
        "the key-encryption key decodes to {got} bytes; it must be exactly 32 bytes (64 hex characters or 43-44 base64 characters, as made by RawKek::generate)"
    )]
    WrongLength {
        /// Bytes decoded.
        got: usize,
    },
    /// The key file could not be read.
    #[error("cannot read the key file {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The key file is not a regular file.
    #[error("the key file {} is not a regular file", .path.display())]
    NotAFile {
        /// The file.
        path: PathBuf,
    },
    /// The key file is too large to be a key.
    #[error("the key file {} is larger than {max} bytes: it cannot be a key file", .path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
    /// The key file can be read by every user of the machine.
    #[error(
        "the key file {} is readable by every user (mode {mode:04o}): restrict it (chmod 600, or 640 with a dedicated group), or, for a read-only secret mount, load it with RawKek::from_file_allow_world_readable", .path.display()
    )]
    WorldReadable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

impl From<LoadKekError> for KeyholderError {
    fn from(e: LoadKekError) -> Self {
        KeyholderError::InvalidKeyText(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_groups() {
        let e = ParseRecoveryKeyError::Checksum { groups: vec![3] };
        assert!(e.to_string().contains("typo in group 3"), "{e}");
        let e = ParseRecoveryKeyError::Checksum { groups: vec![3, 4] };
        assert!(e.to_string().contains("groups 3 and 4"), "{e}");
        let e = ParseRecoveryKeyError::Checksum { groups: vec![] };
        assert!(e.to_string().contains("more than one"), "{e}");
        let e = ParseRecoveryKeyError::WrongLength {
            got: 69,
            groups: vec![2, 3, 4],
        };
        assert!(
            e.to_string().contains("missing in groups 2, 3 and 4"),
            "{e}"
        );
        let e = ParseRecoveryKeyError::WrongLength {
            got: 71,
            groups: vec![],
        };
        assert!(e.to_string().ends_with("has 71"), "{e}");
        let k: KeyholderError = ParseRecoveryKeyError::WordChecksum.into();
        assert!(matches!(k, KeyholderError::InvalidKeyText(_)));
    }
}
