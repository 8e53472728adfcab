//! Decodes arbitrary bytes as a keyholder stanza and reads them as an AWS KMS stanza body
//! (the key ARN it names): must never panic; a decoded stanza re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_keyholder::{KeyholderKind, Stanza};
use strongroom_kms::KmsKeyholder;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = Stanza::decode(data) {
        assert_eq!(s.encode(), data);
        let _ = KmsKeyholder::key_arn_of(&s);
    }
    let s = Stanza {
        kind: KeyholderKind::AwsKms,
        id: [0; 8],
        body: data.to_vec(),
    };
    if let Ok(Some(arn)) = KmsKeyholder::key_arn_of(&s) {
        assert!(arn.starts_with("arn:"));
    }
});
