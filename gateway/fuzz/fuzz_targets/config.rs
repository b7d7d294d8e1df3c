//! The TOML configuration: parsing with unknown keys refused, then validation
//! (`Config::parse`, as `straja check-config` and the daemon use it). Never panics; a configuration
//! that parses has no problems, and a refusal names at least one problem.

#![no_main]

use libfuzzer_sys::fuzz_target;
use straja_gateway::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text) {
        Ok(config) => assert!(config.problems().is_empty()),
        Err(error) => {
            assert!(!error.problems.is_empty());
            let _ = error.to_string();
        }
    }
});
