//! `[[group]]` tables.

use super::{assert_error, assert_has, errors, line_of, ok, with};
use crate::config::{GroupMember, LastResort};

#[test]
fn members_inherit_weight_and_tier_from_their_wan() {
    let c = ok(&with(
        "weight = 5\ntier = 3\n[[group]]\nname = \"g\"\nlast_resort = \"blackhole\"\n\
         members = [{ wan = \"isp2\" }, { wan = \"isp1\", weight = 2, tier = 4 }]\n",
    ));
    let g = &c.groups[0];
    assert_eq!(g.name, "g");
    assert_eq!(g.last_resort, LastResort::Blackhole);
    assert_eq!(
        g.members,
        vec![
            GroupMember {
                wan: 1,
                weight: 5,
                tier: 3
            },
            GroupMember {
                wan: 0,
                weight: 2,
                tier: 4
            },
        ]
    );
    // The keys before [[group]] belong to isp2 (WAN2 comes last in the text).
    assert_eq!((c.wans[1].weight, c.wans[1].tier), (5, 3));
    assert_eq!((c.wans[0].weight, c.wans[0].tier), (1, 1));
}

#[test]
fn last_resort_defaults_to_unreachable_and_main_is_accepted() {
    let c = ok(&with(
        "[[group]]\nname = \"g\"\nmembers = [{ wan = \"isp1\" }]\n",
    ));
    assert_eq!(c.groups[0].last_resort, LastResort::Unreachable);
    let c = ok(&with(
        "[[group]]\nname = \"g\"\nlast_resort = \"main\"\nmembers = [{ wan = \"isp1\" }]\n",
    ));
    assert_eq!(c.groups[0].last_resort, LastResort::MainTable);
}

#[test]
fn unknown_last_resort_lists_the_allowed_values() {
    let text =
        with("[[group]]\nname = \"g\"\nlast_resort = \"drop\"\nmembers = [{ wan = \"isp1\" }]\n");
    assert_error(
        &text,
        "\"drop\"",
        "group \"g\".last_resort",
        "unknown value \"drop\"; expected one of \"unreachable\", \"blackhole\", \"main\"",
    );
}

#[test]
fn unknown_wan_in_a_group() {
    let text = with("[[group]]\nname = \"g\"\nmembers = [{ wan = \"isp9\" }]\n");
    assert_error(
        &text,
        "isp9",
        "group \"g\".members[0].wan",
        "unknown WAN \"isp9\"; defined: \"isp1\", \"isp2\"",
    );
}

#[test]
fn duplicate_member_in_a_group() {
    let text = with(
        "[[group]]\nname = \"g\"\nmembers = [\n  { wan = \"isp1\" },\n  { wan = \"isp2\" },\n  \
         { wan = \"isp1\", weight = 2 },\n]\n",
    );
    assert_error(
        &text,
        "{ wan = \"isp1\", weight = 2 }",
        "group \"g\".members[2].wan",
        "duplicate member: this WAN is already group \"g\".members[0]",
    );
}

#[test]
fn empty_or_missing_members() {
    let text = with("[[group]]\nname = \"g\"\nmembers = []\n");
    assert_error(&text, "members = []", "group \"g\".members", "empty group");
    let text = with("[[group]] # here\nname = \"g\"\n");
    assert_error(&text, "# here", "group \"g\".members", "missing (required)");
}

#[test]
fn member_weight_and_tier_bounds() {
    let text = with("[[group]]\nname = \"g\"\nmembers = [{ wan = \"isp1\", weight = 0 }]\n");
    assert_error(
        &text,
        "weight = 0",
        "group \"g\".members[0].weight",
        "must be at least 1",
    );
    let text = with("[[group]]\nname = \"g\"\nmembers = [{ wan = \"isp1\", tier = 0 }]\n");
    assert_error(
        &text,
        "tier = 0",
        "group \"g\".members[0].tier",
        "must be at least 1",
    );
}

#[test]
fn member_without_wan() {
    let text = with("[[group]]\nname = \"g\"\nmembers = [{ weight = 2 }]\n");
    assert_error(
        &text,
        "weight = 2",
        "group \"g\".members[0].wan",
        "missing (required)",
    );
}

#[test]
fn duplicate_group_names() {
    let text = with(
        "[[group]]\nname = \"g\"\nmembers = [{ wan = \"isp1\" }]\n\
         [[group]]\nname = \"g\" # again\nmembers = [{ wan = \"isp2\" }]\n",
    );
    let first = line_of(&text, "name = \"g\"\nmembers = [{ wan = \"isp1\"");
    assert_error(
        &text,
        "# again",
        "group \"g\".name",
        &format!("duplicate group name \"g\" (already used by group \"g\" on line {first})"),
    );
}

#[test]
fn group_and_wan_names_are_separate_namespaces() {
    ok(&with(
        "[[group]]\nname = \"isp1\"\nmembers = [{ wan = \"isp1\" }]\n",
    ));
}

#[test]
fn nameless_group_uses_an_index_path() {
    let text = with("[[group]]\nmembers = [{ wan = \"isp1\" }]\n");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1);
    assert_has(
        &errs,
        Some(line_of(&text, "[[group]]")),
        "group[0].name",
        "missing (required)",
    );
}
