//! PromQL text through parse, lowering, planning and execution (see `hypnos_fuzz`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hypnos_fuzz::promql_parse_plan(data);
});
