//! Configuration: TOML text → a typed, fully validated [`Config`].
//!
//! This module owns the configuration file format (see `examples/fwd.toml`, which documents
//! every key) and its validation. It does no I/O apart from reading the file in
//! [`Config::load`], and apart from taking [`Timeouts`] from the conntrack crate it knows
//! nothing about the conntrack or balancer crates: the engine maps a [`Config`] onto their
//! types.
//!
//! Pipeline: text → `raw` (serde structs mirroring the TOML, every value with its byte span)
//! → `validate` (raw → model, collecting *all* errors) → `model` ([`Config`]).
//! `error` holds the error types, `source` turns byte spans into lines, `values` and
//! `duration` parse single values (addresses, ports, protocols, names, durations).
//!
//! Invariants:
//! - A [`Config`] value is always fully validated: the only way to get one from text is
//!   [`Config::from_toml_str`] / [`Config::load`], which return it only when there is no error.
//!   Code that builds a `Config` by hand (tests) takes over that responsibility.
//! - In a valid config every index ([`GroupMember::wan`], [`RuleAction::Group`],
//!   [`RuleAction::Wan`], [`Rule::ingress`]) is in bounds; names are unique within their kind,
//!   and LAN and WAN names share one namespace; interfaces are unique; LAN subnets (including
//!   extra subnets) do not overlap, so [`Config::lan_for`] has at most one answer; WANs that
//!   share an address have disjoint `nat_ports`.
//! - Every [`ConfigError`] carries the 1-based line of the offending value (when the problem
//!   has one), a key path such as `wan[1].weight` or `rule "dns".group`, and a message.
//!   Errors are sorted by line.
//! - No input makes this module panic.

mod duration;
mod error;
mod model;
mod raw;
mod source;
mod validate;
mod values;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors, LoadError};
pub use model::{
    Backend, Config, ConntrackConfig, ControlConfig, DataplaneConfig, Forward, Group, GroupMember,
    Health, Inbound, Lan, LastResort, OnFull, OnWanDown, Rule, RuleAction, Timeouts, Wan, XdpMode,
};

impl Config {
    /// Parses and validates a whole configuration. On failure, returns every error found
    /// (TOML syntax and type errors stop parsing, so those come alone; a type error or an
    /// unknown key names its key path, which `serde_path_to_error` tracks).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigErrors> {
        let mut report = source::Report::new(text);
        let parsed = toml::Deserializer::parse(text)
            .map_err(|e| (e, String::new()))
            .and_then(|document| {
                serde_path_to_error::deserialize(document)
                    .map_err(|e| (e.inner().clone(), source::key_path(e.path())))
            });
        let raw: raw::RawConfig = match parsed {
            Ok(raw) => raw,
            Err((e, path)) => {
                report.toml_error(&e, path);
                return Err(report.into_errors());
            }
        };
        match validate::validate(&raw, &mut report) {
            Some(config) if report.is_empty() => Ok(config),
            _ => Err(report.into_errors()),
        }
    }

    /// Reads `path` and calls [`Config::from_toml_str`] on its contents.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, LoadError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Config::from_toml_str(&text)?)
    }
}
