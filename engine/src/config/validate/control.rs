//! `[control]`: the control socket's groups, all optional. Names are checked here; whether
//! the groups exist is the daemon's to find out when it starts.

use toml::Spanned;

use super::check;
use crate::config::model::ControlConfig;
use crate::config::raw::RawControl;
use crate::config::source::Report;

/// A group name as `groupadd` accepts it: a letter or `_` first, then letters, digits,
/// `_`, `-`, at most 32 bytes (a trailing `$` allowed).
fn group_name(name: &str) -> Result<String, String> {
    let body = name.strip_suffix('$').unwrap_or(name);
    let ok = !body.is_empty()
        && name.len() <= 32
        && body
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(name.to_owned())
    } else {
        Err(format!("{name:?} is not a group name"))
    }
}

pub(super) fn validate(
    raw: Option<&Spanned<RawControl>>,
    report: &mut Report<'_>,
) -> Option<ControlConfig> {
    let Some(raw) = raw else {
        return Some(ControlConfig::default());
    };
    let c = raw.get_ref();
    let mut name = |v: &Option<Spanned<String>>, key: &str| match v {
        None => Some(None),
        Some(v) => check(group_name(v.get_ref()), &v.span(), key, report).map(Some),
    };
    let group = name(&c.group, "control.group");
    let admin_group = name(&c.admin_group, "control.admin_group");
    Some(ControlConfig {
        group: group?,
        admin_group: admin_group?,
    })
}

#[cfg(test)]
mod tests {
    use super::group_name;

    #[test]
    fn group_names() {
        for ok in ["fwd", "fwd-admin", "_ops", "wheel", "a1", "machine$"] {
            assert_eq!(group_name(ok).as_deref(), Ok(ok));
        }
        for bad in [
            "",
            "1fwd",
            "fwd admin",
            "fwd/x",
            "$",
            "a".repeat(33).as_str(),
        ] {
            assert!(group_name(bad).is_err(), "{bad:?}");
        }
    }
}
