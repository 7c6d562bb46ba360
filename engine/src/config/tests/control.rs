//! `[control]`.

use super::{assert_error, ok, with};
use crate::config::ControlConfig;

#[test]
fn groups_are_optional_and_named() {
    assert_eq!(ok(&with("")).control, ControlConfig::default());
    let c = ok(&with(
        "[control]\ngroup = \"fwd\"\nadmin_group = \"fwd-admin\"\n",
    ))
    .control;
    assert_eq!(
        (c.group.as_deref(), c.admin_group.as_deref()),
        (Some("fwd"), Some("fwd-admin"))
    );
    assert_error(
        &with("[control]\nadmin_group = \"ops team\"\n"),
        "admin_group =",
        "control.admin_group",
        "is not a group name",
    );
    assert_error(
        &with("[control]\nusers = [\"alice\"]\n"),
        "users",
        "control.users",
        "unknown field",
    );
}
