//! Whole-config tests: the shipped example, defaults, and every validation error with its
//! message and line. Unit tests of single values live next to their parsers.

#![allow(clippy::unwrap_used, clippy::panic)]

mod conntrack;
mod control;
mod dataplane;
mod example;
mod forwards;
mod groups;
mod health;
mod lan_wan;
mod proptests;
mod rules;
mod syntax;

use super::{Config, ConfigError};

/// A valid LAN table.
pub(super) const LAN: &str = r#"
[[lan]]
name = "lan"
interface = "eth0"
address = "192.168.1.1/24"
"#;

/// A valid WAN table.
pub(super) const WAN: &str = r#"
[[wan]]
name = "isp1"
interface = "eth1"
address = "198.51.100.2/30"
gateway = "198.51.100.1"
"#;

/// A second valid WAN table.
pub(super) const WAN2: &str = r#"
[[wan]]
name = "isp2"
interface = "eth2"
address = "203.0.113.10/24"
gateway = "203.0.113.1"
"#;

/// LAN + two WANs, then `rest`.
pub(super) fn with(rest: &str) -> String {
    format!("{LAN}{WAN}{WAN2}{rest}")
}

/// Parses text that must be valid.
pub(super) fn ok(text: &str) -> Config {
    match Config::from_toml_str(text) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}\n--- text ---\n{text}"),
    }
}

/// Parses text that must be invalid; returns its errors.
pub(super) fn errors(text: &str) -> Vec<ConfigError> {
    match Config::from_toml_str(text) {
        Ok(c) => panic!("expected errors, got a config: {c:?}\n--- text ---\n{text}"),
        Err(e) => e.into_iter().collect(),
    }
}

/// The 1-based line of the only occurrence of `needle` in `text`.
pub(super) fn line_of(text: &str, needle: &str) -> usize {
    assert_eq!(
        text.matches(needle).count(),
        1,
        "needle {needle:?} must occur exactly once in\n{text}"
    );
    let at = text.find(needle).unwrap();
    text[..at].matches('\n').count() + 1
}

/// Asserts that `text` has exactly one error, on the line holding `needle`, with key path
/// `path` and a message containing `message`.
pub(super) fn assert_error(text: &str, needle: &str, path: &str, message: &str) {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
    assert_has(&errs, Some(line_of(text, needle)), path, message);
}

/// Asserts that `errs` contains an error with this line, path and message part.
pub(super) fn assert_has(errs: &[ConfigError], line: Option<usize>, path: &str, message: &str) {
    assert!(
        errs.iter()
            .any(|e| e.line == line && e.path == path && e.message.contains(message)),
        "no error with line {line:?}, path {path:?}, message containing {message:?} in {errs:#?}"
    );
}
