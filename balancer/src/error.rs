//! Why a policy was refused.

use std::error::Error;
use std::fmt;

/// A policy that `Policy::new` refused. The message names the offending
/// rule or group (by index and name) and the offending value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// More than 64 WANs.
    TooManyWans { count: usize },
    /// More groups than a `GroupId` can name (65,536).
    TooManyGroups { count: usize },
    /// More than 65,535 rules.
    TooManyRules { count: usize },
    /// A group without members.
    EmptyGroup { group: usize, name: String },
    /// A group member names a WAN that does not exist.
    UnknownMemberWan {
        group: usize,
        name: String,
        member: usize,
        wan: u8,
        wan_count: usize,
    },
    /// A group member with weight 0.
    ZeroWeight {
        group: usize,
        name: String,
        member: usize,
        wan: String,
    },
    /// A WAN listed twice in one group.
    DuplicateMember {
        group: usize,
        name: String,
        wan: String,
    },
    /// A rule's action names a group that does not exist.
    UnknownGroup {
        rule: usize,
        name: String,
        group: u16,
        group_count: usize,
    },
    /// A rule's action names a WAN that does not exist.
    UnknownRuleWan {
        rule: usize,
        name: String,
        wan: u8,
        wan_count: usize,
    },
    /// A rule's port range whose first port is above its last.
    BadPortRange {
        rule: usize,
        name: String,
        first: u16,
        last: u16,
    },
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::TooManyWans { count } => {
                write!(f, "{count} WANs configured, at most 64 are supported")
            }
            PolicyError::TooManyGroups { count } => {
                write!(f, "{count} groups configured, at most 65536 are supported")
            }
            PolicyError::TooManyRules { count } => {
                write!(f, "{count} rules configured, at most 65535 are supported")
            }
            PolicyError::EmptyGroup { group, name } => {
                write!(f, "group {group} '{name}' has no members")
            }
            PolicyError::UnknownMemberWan {
                group,
                name,
                member,
                wan,
                wan_count,
            } => write!(
                f,
                "group {group} '{name}': member {member} names WAN {wan}, but only {wan_count} WANs exist"
            ),
            PolicyError::ZeroWeight {
                group,
                name,
                member,
                wan,
            } => write!(
                f,
                "group {group} '{name}': member {member} (WAN '{wan}') has weight 0, weights must be at least 1"
            ),
            PolicyError::DuplicateMember { group, name, wan } => {
                write!(f, "group {group} '{name}': WAN '{wan}' is listed more than once")
            }
            PolicyError::UnknownGroup {
                rule,
                name,
                group,
                group_count,
            } => write!(
                f,
                "rule {rule} '{name}': action names group {group}, but only {group_count} groups exist"
            ),
            PolicyError::UnknownRuleWan {
                rule,
                name,
                wan,
                wan_count,
            } => write!(
                f,
                "rule {rule} '{name}': action names WAN {wan}, but only {wan_count} WANs exist"
            ),
            PolicyError::BadPortRange {
                rule,
                name,
                first,
                last,
            } => write!(
                f,
                "rule {rule} '{name}': port range {first}-{last} is empty (first port above last)"
            ),
        }
    }
}

impl Error for PolicyError {}
