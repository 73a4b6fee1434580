//! Arbitrary UTF-8 as a TOML configuration file: `Config::from_toml_str`, then the guard rails
//! (`[audit]`, `[keys]`) parsed from it and from the text directly. Must never panic.
#![no_main]

use hsm_custody::{Config, GuardConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    // `pin_file` is read from disk: keep the fuzzer off device and kernel files (a read of
    // `/dev/stdin` or `/dev/zero` would hang, not crash).
    if ["/dev", "/proc", "/sys", "\\u", "\\U"]
        .iter()
        .any(|p| text.contains(p))
    {
        return;
    }
    if let Ok(config) = Config::from_toml_str(text) {
        let _ = config.module_path();
        let _ = config.token_label();
        let _ = GuardConfig::from_config(&config);
    }
    let _ = GuardConfig::from_toml_str(text);
});
