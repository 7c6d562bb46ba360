//! No input panics; whatever validates satisfies the model's invariants.

use proptest::prelude::*;

use crate::config::{Config, RuleAction};

const EXAMPLE: &str = include_str!("../../../../examples/fwd.toml");

/// Values that stress parsers and validators when spliced into the example.
const TOKENS: &[&str] = &[
    "0",
    "-1",
    "1",
    "65536",
    "256",
    "4096",
    "9223372036854775807",
    "99999999999999999999",
    "1.5",
    "true",
    "[]",
    "{}",
    "[1, \"2\"]",
    "\"\"",
    "\"0s\"",
    "\"5m\"",
    "\"2h4m\"",
    "\"1-2\"",
    "\"2-1\"",
    "\"-\"",
    "\"65535-65535\"",
    "\"::1\"",
    "\"0.0.0.0/0\"",
    "\"255.255.255.255/32\"",
    "\"10.0.0.1/33\"",
    "\"isp1\"",
    "\"lan\"",
    "\"balanced\"",
    "\"main\"",
    "\"tcp\"",
    "\"any\"",
    "\"é\"",
    "[{ wan = \"isp1\" }]",
    "1979-05-27",
];

fn check_invariants(c: &Config) {
    assert!(!c.lans.is_empty() && !c.wans.is_empty() && c.wans.len() <= 64);
    for g in &c.groups {
        assert!(!g.members.is_empty());
        for m in &g.members {
            assert!(m.wan < c.wans.len() && m.weight >= 1 && m.tier >= 1);
        }
    }
    for r in &c.rules {
        assert!(r.ingress.iter().all(|&l| l < c.lans.len()));
        match r.action {
            RuleAction::Group(g) => assert!(g < c.groups.len()),
            RuleAction::Wan(w) => assert!(w < c.wans.len()),
            RuleAction::MainTable | RuleAction::Blackhole | RuleAction::Unreachable => {
                assert!(r.sticky.is_none());
            }
        }
        if !r.src_ports.is_empty() || !r.dst_ports.is_empty() {
            assert!(matches!(r.proto, Some(6 | 17)));
        }
    }
    for w in &c.wans {
        assert!(w.subnet.contains(&w.gateway) && *w.nat_ports.start() >= 1024);
    }
}

fn check(text: &str) {
    match Config::from_toml_str(text) {
        Ok(c) => check_invariants(&c),
        Err(errs) => {
            assert!(!errs.is_empty());
            let lines = text.split('\n').count();
            for e in &errs {
                if let Some(line) = e.line {
                    assert!((1..=lines).contains(&line), "line {line} of {lines}: {e}");
                }
                assert!(!e.to_string().contains('\n'), "one line per error: {e:?}");
            }
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check(&text);
    }

    #[test]
    fn toml_like_text_never_panics(text in "[\\[\\]a-z_=\" 0-9./,{}#\n-]{0,300}") {
        check(&text);
    }

    #[test]
    fn example_with_a_value_replaced_never_panics(
        line in 0usize..200,
        token in proptest::sample::select(TOKENS),
    ) {
        let text: Vec<String> = EXAMPLE
            .lines()
            .enumerate()
            .map(|(i, l)| match l.split_once(" = ") {
                Some((key, _)) if i == line % EXAMPLE.lines().count() => format!("{key} = {token}"),
                _ => l.to_owned(),
            })
            .collect();
        check(&text.join("\n"));
    }

    #[test]
    fn example_with_a_line_deleted_or_garbled_never_panics(
        line in 0usize..200,
        junk in "\\PC{0,40}",
    ) {
        let n = EXAMPLE.lines().count();
        let text: Vec<&str> = EXAMPLE
            .lines()
            .enumerate()
            .map(|(i, l)| if i == line % n { junk.as_str() } else { l })
            .collect();
        check(&text.join("\n"));
    }
}
