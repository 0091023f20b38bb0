#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| edge::fuzzing::purge_body(data));
