//! `[[forward]]` tables.

use std::net::Ipv4Addr;

use super::{assert_error, assert_has, errors, ok, with};

/// Two WANs (isp1, isp2), a group "g" of isp2 alone, then `forwards`.
fn forwards(forwards: &str) -> String {
    with(&format!(
        "[[group]]\nname = \"g\"\nmembers = [{{ wan = \"isp2\" }}]\n{forwards}"
    ))
}

#[test]
fn forwards_reach_the_model() {
    let c = ok(&forwards(
        "[[forward]]\nname = \"web\"\nwan = \"isp1\"\nproto = \"tcp\"\nport = 8080\n\
         to = \"192.168.1.10\"\nto_port = 80\n\
         [[forward]]\nname = \"torrent\"\nproto = \"both\"\nport = \"6881-6889\"\n\
         to = \"192.168.1.20\"\n\
         [[forward]]\nname = \"dns\"\ngroup = \"g\"\nproto = \"udp\"\nport = 53\nto = \"192.168.1.30\"\n\
         [[forward]]\nname = \"ssh\"\nwans = [\"isp2\", \"isp1\", \"isp2\"]\nproto = \"tcp\"\n\
         port = 2222\nto = \"192.168.1.40\"\nto_port = 22\n",
    ));
    let [web, torrent, dns, ssh] = &c.forwards[..] else {
        panic!("{:?}", c.forwards);
    };
    assert_eq!(web.wans, vec![0]);
    assert_eq!(web.protos, vec![6]);
    assert_eq!((web.ports.clone(), web.to_port), (8080..=8080, 80));
    assert_eq!((web.to, web.lan), (Ipv4Addr::new(192, 168, 1, 10), 0));
    assert_eq!(web.internal_port(8080), 80);
    assert_eq!(torrent.wans, vec![0, 1], "no WAN given: every WAN");
    assert_eq!(torrent.protos, vec![6, 17]);
    assert_eq!(
        torrent.internal_port(6885),
        6885,
        "to_port defaults to the port"
    );
    assert_eq!(dns.wans, vec![1], "a group's members");
    assert_eq!(ssh.wans, vec![1, 0], "deduplicated, in order");
    assert_eq!(ssh.internal_port(2222), 22);
}

#[test]
fn missing_keys_are_named() {
    let text = forwards("[[forward]]\nname = \"f\"\n");
    let errs = errors(&text);
    for key in ["proto", "port", "to"] {
        assert!(
            errs.iter()
                .any(|e| e.path == format!("forward \"f\".{key}") && e.message.contains("missing")),
            "{key}: {errs:#?}"
        );
    }
}

#[test]
fn bad_values_are_reported_where_they_are() {
    let base = "[[forward]]\nname = \"f\"\nproto = \"tcp\"\nport = 8080\nto = \"192.168.1.10\"\n";
    let cases = [
        (
            "proto = \"tcp\"",
            "proto = \"sctp\"",
            "forward \"f\".proto",
            "unknown value \"sctp\"",
        ),
        (
            "port = 8080",
            "port = 0",
            "forward \"f\".port",
            "port 0 cannot be forwarded",
        ),
        (
            "port = 8080",
            "port = \"90-80\"",
            "forward \"f\".port",
            "greater than last port",
        ),
        (
            "to = \"192.168.1.10\"",
            "to = \"10.99.0.1\"",
            "forward \"f\".to",
            "10.99.0.1 is in no LAN's subnets",
        ),
        (
            "to = \"192.168.1.10\"",
            "to = \"192.168.1.1\"",
            "forward \"f\".to",
            "the router's own LAN address",
        ),
        (
            "to = \"192.168.1.10\"",
            "to = \"nope\"",
            "forward \"f\".to",
            "nope",
        ),
        (
            "port = 8080",
            "port = 8080\nwan = \"isp9\"",
            "forward \"f\".wan",
            "unknown WAN \"isp9\"",
        ),
        (
            "port = 8080",
            "port = 8080\nwan = \"isp1\"\ngroup = \"g\"",
            "forward \"f\"",
            "at most one of `wan`, `wans` and `group`",
        ),
        (
            "port = 8080",
            "port = 8080\nwans = []",
            "forward \"f\".wans",
            "empty list",
        ),
        (
            "port = 8080",
            "port = \"65000-65535\"\nto_port = 65500",
            "forward \"f\".to_port",
            "goes past 65535",
        ),
        (
            "port = 8080",
            "port = 8080\nto_port = 0",
            "forward \"f\".to_port",
            "out of range",
        ),
    ];
    for (from, to, path, message) in cases {
        let text = forwards(&base.replace(from, to));
        // the error's line: the new value's, or the table's header for the table's own errors
        let needle = if path.ends_with('"') {
            "[[forward]]"
        } else {
            to.lines().last().unwrap_or(to)
        };
        assert_error(&text, needle, path, message);
    }
}

#[test]
fn overlapping_forwards_on_a_wan_are_refused() {
    let text = forwards(
        "[[forward]]\nname = \"a\"\nproto = \"both\"\nport = \"8000-8010\"\nto = \"192.168.1.10\"\n\
         [[forward]]\nname = \"b\"\nwan = \"isp2\"\nproto = \"udp\"\nport = 8010\nto = \"192.168.1.11\"\n",
    );
    let second_header = text.match_indices("[[forward]]").nth(1).map(|(at, _)| at);
    let line = second_header.map(|at| text[..at].lines().count() + 1);
    assert_has(
        &errors(&text),
        line,
        "forward \"b\"",
        "its ports overlap those of forward \"a\" on WAN isp2",
    );
    // another protocol, or another WAN, is no overlap
    ok(&forwards(
        "[[forward]]\nname = \"a\"\nwan = \"isp1\"\nproto = \"tcp\"\nport = 8000\nto = \"192.168.1.10\"\n\
         [[forward]]\nname = \"b\"\nwan = \"isp1\"\nproto = \"udp\"\nport = 8000\nto = \"192.168.1.11\"\n\
         [[forward]]\nname = \"c\"\nwan = \"isp2\"\nproto = \"tcp\"\nport = 8000\nto = \"192.168.1.12\"\n",
    ));
    let dup = forwards(
        "[[forward]]\nname = \"a\"\nproto = \"tcp\"\nport = 1\nto = \"192.168.1.10\"\n\
         [[forward]]\nname = \"a\"\nproto = \"tcp\"\nport = 2\nto = \"192.168.1.10\"\n",
    );
    assert!(
        errors(&dup)
            .iter()
            .any(|e| e.message.contains("appears twice") || e.message.contains("duplicate")),
        "{:#?}",
        errors(&dup)
    );
}

#[test]
fn at_most_65536_ports_are_forwarded() {
    ok(&forwards(
        "[[forward]]\nname = \"all\"\nwan = \"isp1\"\nproto = \"both\"\nport = \"1-32768\"\nto = \"192.168.1.10\"\n",
    ));
    let text = forwards(
        "[[forward]]\nname = \"a\"\nproto = \"tcp\"\nport = \"1-32768\"\nto = \"192.168.1.10\"\n\
         [[forward]]\nname = \"b\"\nwan = \"isp1\"\nproto = \"udp\"\nport = 9\nto = \"192.168.1.10\"\n",
    );
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.path == "forward \"b\"" && e.message.contains("65537")),
        "{errs:#?}"
    );
}
