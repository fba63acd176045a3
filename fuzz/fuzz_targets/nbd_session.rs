//! Fuzzes the NBD server: greeting, option haggling and the request parser/executor, with
//! the fuzzer's bytes as everything the client sends (see mtkit::writer::nbd::fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mtkit::writer::nbd::fuzz::session(data);
});
