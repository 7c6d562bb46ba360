//! `[[lan]]` and `[[wan]]` tables and the checks across them.

use std::fmt::Write as _;

use super::{assert_error, assert_has, errors, line_of, ok, LAN, WAN, WAN2};
use crate::config::Inbound;

#[test]
fn wan_defaults_applied() {
    let c = ok(&format!("{LAN}{WAN}"));
    let w = &c.wans[0];
    assert_eq!((w.weight, w.tier), (1, 1));
    assert_eq!(w.nat_ports, 20000..=59999);
    assert!(c.lans[0].extra_subnets.is_empty());
    assert!(c.groups.is_empty() && c.rules.is_empty());
}

#[test]
fn at_least_one_lan_and_one_wan() {
    let errs = errors(WAN);
    assert_eq!(errs.len(), 1);
    assert_has(&errs, None, "lan", "at least one [[lan]] table is required");
    let errs = errors(LAN);
    assert_eq!(errs.len(), 1);
    assert_has(&errs, None, "wan", "at least one [[wan]] table is required");
    let errs = errors("");
    assert_eq!(errs.len(), 2);
    assert_eq!(
        errs[0].to_string(),
        "lan: at least one [[lan]] table is required"
    );
}

fn wan_table(i: usize) -> String {
    format!(
        "[[wan]] # w{i}\nname = \"w{i}\"\ninterface = \"w{i}\"\naddress = \"100.64.{i}.2/30\"\n\
         gateway = \"100.64.{i}.1\"\n"
    )
}

#[test]
fn at_most_64_wans() {
    let mut text = LAN.to_owned();
    for i in 0..64 {
        text.push_str(&wan_table(i));
    }
    ok(&text);
    text.push_str(&wan_table(64));
    assert_error(
        &text,
        "# w64\n",
        "wan[64]",
        "too many WANs: 65 defined, at most 64",
    );
}

#[test]
fn at_most_250_lans_and_wans() {
    let mut text = String::new();
    for i in 0..189 {
        write!(
            text,
            "[[lan]] # l{i}\nname = \"l{i}\"\ninterface = \"l{i}\"\naddress = \"10.{}.{}.1/24\"\n",
            i / 250,
            i % 250
        )
        .unwrap();
    }
    for i in 0..61 {
        text.push_str(&wan_table(i));
    }
    ok(&text);
    text.push_str(
        "[[lan]] # last\nname = \"last\"\ninterface = \"last\"\naddress = \"172.16.0.1/24\"\n",
    );
    assert_error(
        &text,
        "# last",
        "lan[189]",
        "too many interfaces: 251 LANs and WANs defined, at most 250",
    );
}

#[test]
fn missing_required_keys_reported_at_the_table() {
    let text = format!("{LAN}\n[[wan]]\nname = \"isp1\"\n");
    let errs = errors(&text);
    let line = Some(line_of(&text, "[[wan]]"));
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert_has(&errs, line, "wan[0].interface", "missing (required)");
    assert_has(&errs, line, "wan[0].address", "missing (required)");
    assert_has(&errs, line, "wan[0].gateway", "missing (required)");

    let text = format!("\n[[lan]]\ninterface = \"x\"\naddress = \"10.0.0.1/8\"\n{WAN}");
    assert_error(&text, "[[lan]]", "lan[0].name", "missing (required)");
}

#[test]
fn lan_and_wan_names_share_one_namespace() {
    let text = format!("{LAN}{}", WAN.replace("\"isp1\"", "\"lan\""));
    assert_error(
        &text,
        "name = \"lan\"\ninterface = \"eth1\"",
        "wan[0].name",
        "duplicate LAN/WAN name \"lan\" (already used by lan[0] on line 3)",
    );
    let text = format!("{LAN}{WAN}{}", WAN2.replace("\"isp2\"", "\"isp1\""));
    assert_error(
        &text,
        "name = \"isp1\"\ninterface = \"eth2\"",
        "wan[1].name",
        "duplicate LAN/WAN name \"isp1\" (already used by wan[0] on line 8)",
    );
}

#[test]
fn bad_names_rejected() {
    let text = format!("{LAN}{}", WAN.replace("\"isp1\"", "\"isp 1\""));
    assert_error(&text, "\"isp 1\"", "wan[0].name", "is not a valid name");
    let text = format!("{LAN}{}", WAN.replace("\"isp1\"", "\"\""));
    assert_error(&text, "name = \"\"", "wan[0].name", "must not be empty");
}

#[test]
fn duplicate_interfaces() {
    let text = format!("{LAN}{WAN}{}", WAN2.replace("\"eth2\"", "\"eth0\""));
    assert_error(
        &text,
        "interface = \"eth0\"\naddress = \"203",
        "wan[1].interface",
        "duplicate interface \"eth0\" (already used by lan[0] on line 4)",
    );
}

#[test]
fn bad_interface_names() {
    let text = format!(
        "{LAN}{}",
        WAN.replace("\"eth1\"", "\"a-very-long-interface\"")
    );
    assert_error(
        &text,
        "a-very-long-interface",
        "wan[0].interface",
        "longer than 15 bytes",
    );
}

#[test]
fn bad_addresses() {
    let text = format!("{}{WAN}", LAN.replace("192.168.1.1/24", "192.168.1.1"));
    assert_error(
        &text,
        "\"192.168.1.1\"",
        "lan[0].address",
        "has no prefix length",
    );
    let text = format!("{}{WAN}", LAN.replace("192.168.1.1/24", "banana"));
    assert_error(
        &text,
        "banana",
        "lan[0].address",
        "\"banana\" is not an IPv4 address with prefix length",
    );
    let text = format!("{}{WAN}", LAN.replace("192.168.1.1/24", "192.168.1.0/24"));
    assert_error(
        &text,
        "192.168.1.0/24",
        "lan[0].address",
        "is the network address",
    );
    let text = format!("{LAN}{}", WAN.replace("198.51.100.1\"", "198.51.100.x\""));
    assert_error(
        &text,
        "198.51.100.x",
        "wan[0].gateway",
        "is not an IPv4 address",
    );
    let text = format!("{LAN}{}", WAN.replace("198.51.100.2/30", "2001:db8::2/64"));
    let errs = errors(&text);
    assert_has(
        &errs,
        Some(line_of(&text, "2001:db8")),
        "wan[0].address",
        "IPv6 is not supported",
    );
}

#[test]
fn bad_extra_subnet() {
    let text = format!("{LAN}extra_subnets = [\"10.0.0.0/8\",\n  \"10.300.0.0/16\"]\n{WAN}");
    assert_error(
        &text,
        "10.300.0.0/16",
        "lan[0].extra_subnets[1]",
        "is not an IPv4 subnet",
    );
}

#[test]
fn lan_inbound_drops_unless_allowed() {
    assert_eq!(ok(&format!("{LAN}{WAN}")).lans[0].inbound, Inbound::Drop);
    for (value, inbound) in [("drop", Inbound::Drop), ("allow", Inbound::Allow)] {
        let text = format!("{LAN}inbound = \"{value}\"\n{WAN}");
        assert_eq!(ok(&text).lans[0].inbound, inbound);
    }
    assert_error(
        &format!("{LAN}inbound = \"open\"\n{WAN}"),
        "inbound =",
        "lan[0].inbound",
        "unknown value \"open\"",
    );
}

#[test]
fn gateway_must_lie_in_the_wan_subnet() {
    let text = format!("{LAN}{}", WAN.replace("198.51.100.1\"", "198.51.100.9\""));
    assert_error(
        &text,
        "198.51.100.9",
        "wan[0].gateway",
        "198.51.100.9 is outside the WAN's subnet 198.51.100.0/30",
    );
    let text = format!("{LAN}{}", WAN.replace("198.51.100.1\"", "198.51.100.2\""));
    assert_error(
        &text,
        "\"198.51.100.2\"",
        "wan[0].gateway",
        "is the WAN's own address",
    );
}

#[test]
fn wan_address_inside_a_lan_subnet() {
    let text = format!(
        "{LAN}[[wan]]\nname = \"w\"\ninterface = \"w\"\naddress = \"192.168.1.77/24\"\ngateway = \"192.168.1.254\"\n"
    );
    assert_error(
        &text,
        "192.168.1.77",
        "wan[0].address",
        "192.168.1.77 lies inside LAN subnet 192.168.1.0/24 (lan[0].address)",
    );
}

#[test]
fn lan_subnets_must_not_overlap() {
    let text = format!(
        "{LAN}{WAN}[[lan]]\nname = \"b\"\ninterface = \"b\"\naddress = \"192.168.0.1/16\"\n"
    );
    assert_error(
        &text,
        "192.168.0.1/16",
        "lan[1].address",
        "subnet 192.168.0.0/16 overlaps 192.168.1.0/24 of lan[0].address (line 5)",
    );
    let text = format!(
        "{LAN}extra_subnets = [\"10.0.0.0/8\"]\n{WAN}[[lan]]\nname = \"b\"\ninterface = \"b\"\n\
         address = \"10.1.0.1/16\"\n"
    );
    assert_error(
        &text,
        "10.1.0.1/16",
        "lan[1].address",
        "overlaps 10.0.0.0/8 of lan[0].extra_subnets[0]",
    );
}

#[test]
fn weight_and_tier_bounds() {
    let text = format!("{LAN}{WAN}weight = 0\n");
    assert_error(&text, "weight = 0", "wan[0].weight", "must be at least 1");
    let errs = errors(&text);
    assert_eq!(
        errs[0].to_string(),
        "line 12: wan[0].weight: must be at least 1"
    );
    let text = format!("{LAN}{WAN}tier = 0\n");
    assert_error(&text, "tier = 0", "wan[0].tier", "must be at least 1");
    let text = format!("{LAN}{WAN}tier = 256\n");
    assert_error(&text, "tier = 256", "wan[0].tier", "must be at most 255");
    let text = format!("{LAN}{WAN}weight = -3\n");
    assert_error(&text, "weight = -3", "wan[0].weight", "must be at least 1");
}

#[test]
fn nat_ports_checked() {
    for (value, message) in [
        ("\"abc\"", "is not a port or port range"),
        (
            "\"40000-30000\"",
            "first port 40000 is greater than last port 30000",
        ),
        ("\"80-9000\"", "below 1024: reserved ports"),
        ("\"20000-70000\"", "port 70000 is out of range"),
        ("1000", "below 1024: reserved ports"),
    ] {
        let text = format!("{LAN}{WAN}nat_ports = {value}\n");
        assert_error(&text, "nat_ports", "wan[0].nat_ports", message);
    }
    let c = ok(&format!("{LAN}{WAN}nat_ports = \"1024-1024\"\n"));
    assert_eq!(c.wans[0].nat_ports, 1024..=1024);
}

#[test]
fn wans_sharing_an_address_need_disjoint_nat_ports() {
    let second = |ports: &str| {
        format!(
            "[[wan]]\nname = \"isp1b\"\ninterface = \"eth9\"\naddress = \"198.51.100.2/30\"\n\
             gateway = \"198.51.100.1\"\nnat_ports = \"{ports}\"\n"
        )
    };
    let base = format!("{LAN}{WAN}nat_ports = \"20000-39999\"\n");
    ok(&format!("{base}{}", second("40000-59999")));
    let text = format!("{base}{}", second("39999-59999"));
    assert_error(
        &text,
        "\"39999-59999\"",
        "wan[1].nat_ports",
        "39999-59999 overlaps 20000-39999 of wan[0], which has the same address 198.51.100.2",
    );
}

#[test]
fn overlaps_are_reported_at_the_later_subnet_once() {
    let lan = |name: &str, address: &str, extra: &str| {
        format!(
            "[[lan]]\nname = \"{name}\"\ninterface = \"{name}\"\naddress = \"{address}\"\n\
             extra_subnets = [{extra}]\n"
        )
    };
    // Overlaps inside one LAN are fine; an extra subnet of an earlier LAN that contains a
    // later LAN's subnet is reported at the later one; identical subnets clash.
    let text = format!(
        "{}{}{}{WAN}",
        lan(
            "a",
            "192.168.1.1/24",
            "\"10.0.0.0/8\", \"10.1.0.0/16\", \"10.1.0.0/16\""
        ),
        lan("b", "10.1.2.1/24", ""),
        lan("c", "172.16.0.1/24", "\"10.1.0.0/16\""),
    )
    .replace("extra_subnets = []\n", "");
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_has(
        &errs,
        Some(line_of(&text, "10.1.2.1/24")),
        "lan[1].address",
        "subnet 10.1.2.0/24 overlaps 10.0.0.0/8 of lan[0].extra_subnets[0]",
    );
    assert_has(
        &errs,
        Some(line_of(&text, "extra_subnets = [\"10.1.0.0/16\"]")),
        "lan[2].extra_subnets[0]",
        "subnet 10.1.0.0/16 overlaps 10.0.0.0/8 of lan[0].extra_subnets[0]",
    );
}
