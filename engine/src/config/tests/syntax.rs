//! TOML syntax and type errors (reported by the toml crate, with the key path serde was at),
//! and several errors at once.

use super::{assert_has, errors, line_of, with, LAN, WAN};

#[test]
fn syntax_error_has_a_line() {
    let text = with("[[rule]]\nname = \"r\nwan = \"isp1\"\n");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].line, Some(line_of(&text, "name = \"r\n")));
    assert_eq!(errs[0].path, "");
    assert!(errs[0]
        .to_string()
        .starts_with(&format!("line {}: ", errs[0].line.unwrap())));
}

#[test]
fn unknown_key_has_a_line() {
    let text = format!("{LAN}{WAN}wieght = 3\n");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1);
    assert_has(
        &errs,
        Some(line_of(&text, "wieght")),
        "wan[0].wieght",
        "unknown field `wieght`",
    );
    let text = format!("{LAN}{WAN}[conntrack.timeouts]\nudp = 1\ntcp = 3\n");
    assert_has(
        &errors(&text),
        Some(line_of(&text, "tcp =")),
        "conntrack.timeouts.tcp",
        "unknown field `tcp`",
    );
    let text = format!("{LAN}{WAN}[firewall]\n");
    assert_has(
        &errors(&text),
        Some(line_of(&text, "firewall")),
        "firewall",
        "unknown field `firewall`",
    );
}

#[test]
fn wrong_type_has_a_line() {
    let text = format!("{LAN}{WAN}weight = \"3\"\n");
    assert_has(
        &errors(&text),
        Some(line_of(&text, "weight")),
        "wan[0].weight",
        "invalid type: string \"3\", expected i64",
    );
    let text = format!("{LAN}{WAN}[conntrack]\nfragment_timeout = 1.5\n");
    assert_has(
        &errors(&text),
        Some(line_of(&text, "1.5")),
        "conntrack.fragment_timeout",
        "expected an integer or a string",
    );
}

#[test]
fn single_table_instead_of_list_gets_a_hint() {
    let text = format!("[lan]\nname = \"lan\"\n{WAN}");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0]
            .message
            .contains("a list of tables is written [[name]]"),
        "{errs:#?}"
    );
    assert_eq!(errs[0].line, Some(1));
}

#[test]
fn all_errors_are_reported_together_sorted_by_line() {
    let text = format!(
        "{LAN}{WAN}weight = 0\n[[group]]\nname = \"g\"\nmembers = [{{ wan = \"nope\" }}]\n\
         [[rule]]\nname = \"r\"\nproto = \"icmp\"\ndst_ports = [53]\ngroup = \"g\"\n\
         [conntrack]\nshards = 3\n"
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert_has(
        &errs,
        Some(line_of(&text, "weight = 0")),
        "wan[0].weight",
        "at least 1",
    );
    assert_has(
        &errs,
        Some(line_of(&text, "nope")),
        "group \"g\".members[0].wan",
        "unknown WAN",
    );
    assert_has(
        &errs,
        Some(line_of(&text, "[53]")),
        "rule \"r\".dst_ports",
        "ports need proto",
    );
    assert_has(
        &errs,
        Some(line_of(&text, "shards")),
        "conntrack.shards",
        "power of two",
    );
    let lines: Vec<_> = errs.iter().map(|e| e.line).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
}

#[test]
fn errors_display_one_per_line() {
    let text = format!("{LAN}{WAN}weight = 0\ntier = 0\n");
    let e = crate::config::Config::from_toml_str(&text).unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 12: wan[0].weight: must be at least 1\nline 13: wan[0].tier: must be at least 1"
    );
}
