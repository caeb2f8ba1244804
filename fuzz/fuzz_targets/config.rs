//! Arbitrary bytes into the config parser and resolver: every input is either a config or a
//! message, never a panic.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The loader reads files as UTF-8 and reports anything else before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A base directory that does not exist, so relative token stores are never read.
    let base_dir = Path::new("/nonexistent/pipedrive-sync-fuzz");
    if let Err(error) = pipedrive_config::Config::parse(text, "fuzz.yaml", base_dir) {
        assert!(
            !error.to_string().is_empty(),
            "an empty message for {text:?}"
        );
    }
    // A command-line list is one line; a whole file as one would time the suggestions only.
    if let Some(line) = text.lines().next() {
        let _ = pipedrive_config::parse_stream_list(line, "--streams");
    }
});
