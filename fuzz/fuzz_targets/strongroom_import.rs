//! The facade's import decoder on arbitrary bytes: must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strongroom::fuzzing::import(data);
});
