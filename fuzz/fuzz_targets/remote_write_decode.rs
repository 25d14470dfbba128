//! Remote-write bodies through decode, validation and the ingester's write (see
//! `hypnos_fuzz`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hypnos_fuzz::remote_write_decode(data);
});
