//! The facade's identity_file decoder on arbitrary bytes: must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strongroom::fuzzing::identity_file(data);
});
