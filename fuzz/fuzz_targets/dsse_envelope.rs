#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cryptohost_fuzz_targets::dsse_envelope(data));
