//! Entry points for the fuzz targets in `fuzz/` (built only with `--cfg fuzzing`): every
//! decoder of the facade's formats, fed arbitrary bytes. None may panic.

use crate::{ExportFormat, IdentityFile};

/// Every row decoder: vault header, index entry, record payload, audit entry, rotation job.
pub fn rows(data: &[u8]) {
    let _ = crate::meta::Header::decode(data);
    let _ = crate::records::IndexEntry::decode(data);
    let _ = crate::records::decode_payload(&strongroom_crypto::SecretBytes::from(data.to_vec()));
    crate::audit::fuzz_decode(data);
    crate::rotation::fuzz_decode(data);
    let _ = crate::records::parse_version_key(data);
}

/// The snapshot file parser.
pub fn snapshot(data: &[u8]) {
    let _ = crate::snapshot::parse_snapshot(data, data.len() as u64);
}

/// The identity file decoder.
pub fn identity_file(data: &[u8]) {
    if let Ok(f) = IdentityFile::decode(data) {
        let again = IdentityFile::decode(&f.encode()).map(|g| g.encode());
        assert_eq!(again.ok(), Some(f.encode()));
    }
}

/// The dotenv and JSON import parsers.
pub fn import(data: &[u8]) {
    let _ = crate::export::fuzz_parse(ExportFormat::Dotenv, data);
    let _ = crate::export::fuzz_parse(ExportFormat::Json, data);
}
