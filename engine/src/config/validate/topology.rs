//! Checks across LANs and WANs: counts, the shared name namespace, interfaces, subnet
//! overlaps, WAN addresses inside LANs, NAT port ranges of WANs sharing an address.

use std::collections::HashMap;
use std::ops::Range;

use ipnet::Ipv4Net;
use toml::Spanned;

use super::lan::LanDraft;
use super::wan::WanDraft;
use crate::config::source::Report;

/// Most WANs (the balancer keeps WAN sets as 64-bit masks).
pub(crate) const MAX_WANS: usize = 64;
/// Most LANs and WANs together.
pub(crate) const MAX_INTERFACES: usize = 250;

/// One LAN or WAN, as far as the cross-checks care.
struct Port<'d> {
    path: &'d str,
    header: Range<usize>,
    name: Option<&'d Spanned<String>>,
    interface: Option<&'d Spanned<String>>,
}

pub(super) fn check(lans: &[LanDraft<'_>], wans: &[WanDraft<'_>], report: &mut Report<'_>) {
    if lans.is_empty() {
        report.global("lan", "at least one [[lan]] table is required");
    }
    if wans.is_empty() {
        report.global("wan", "at least one [[wan]] table is required");
    }
    if let Some(w) = wans.get(MAX_WANS) {
        report.at(
            &w.common.header,
            &w.common.path,
            format!(
                "too many WANs: {} defined, at most {MAX_WANS} are supported",
                wans.len()
            ),
        );
    }

    let mut ports: Vec<Port<'_>> = lans
        .iter()
        .map(|l| Port {
            path: &l.common.path,
            header: l.common.header.clone(),
            name: l.common.name,
            interface: l.common.interface,
        })
        .chain(wans.iter().map(|w| Port {
            path: &w.common.path,
            header: w.common.header.clone(),
            name: w.common.name,
            interface: w.common.interface,
        }))
        .collect();
    ports.sort_by_key(|p| p.header.start);
    if let Some(p) = ports.get(MAX_INTERFACES) {
        report.at(
            &p.header,
            p.path,
            format!(
                "too many interfaces: {} LANs and WANs defined, at most {MAX_INTERFACES} are \
                 supported together",
                ports.len()
            ),
        );
    }
    unique(&ports, "name", "LAN/WAN name", |p| p.name, report);
    unique(&ports, "interface", "interface", |p| p.interface, report);

    lan_overlaps(lans, report);
    wan_addresses_outside_lans(lans, wans, report);
    nat_port_overlaps(wans, report);
}

/// Reports every value of `key` already used by an earlier LAN or WAN in the file.
fn unique<'d>(
    ports: &[Port<'d>],
    key: &str,
    what: &str,
    get: impl Fn(&Port<'d>) -> Option<&'d Spanned<String>>,
    report: &mut Report<'_>,
) {
    let mut seen: HashMap<&str, (&str, usize)> = HashMap::new();
    for p in ports {
        let Some(value) = get(p) else { continue };
        let line = report.line(&value.span());
        match seen.get(value.get_ref().as_str()) {
            Some(&(first, first_line)) => report.at(
                &value.span(),
                format_args!("{}.{key}", p.path),
                format!(
                    "duplicate {what} {:?} (already used by {first} on line {first_line})",
                    value.get_ref()
                ),
            ),
            None => {
                seen.insert(value.get_ref(), (p.path, line));
            }
        }
    }
}

/// One LAN subnet (own or extra), for the overlap check.
struct LanNet {
    lan: usize,
    net: Ipv4Net,
    path: String,
    span: Range<usize>,
}

/// LAN subnets (including extra subnets) of different LANs must not overlap. Each subnet
/// overlapping one of another LAN earlier in the file is reported once, naming the first.
fn lan_overlaps(lans: &[LanDraft<'_>], report: &mut Report<'_>) {
    let nets: Vec<LanNet> = lans
        .iter()
        .enumerate()
        .flat_map(|(lan, l)| {
            l.subnets()
                .into_iter()
                .map(move |(net, path, span)| LanNet {
                    lan,
                    net,
                    path,
                    span,
                })
        })
        .collect();
    // CIDR blocks are disjoint or nested. Sorted by (network, prefix length), the blocks
    // containing a block are the chain of nested blocks still open when it comes up.
    let mut order: Vec<usize> = (0..nets.len()).collect();
    order.sort_by_key(|&i| {
        (
            nets[i].net.network(),
            nets[i].net.prefix_len(),
            nets[i].span.start,
        )
    });
    let mut chain: Vec<usize> = Vec::new();
    let mut first_clash: Vec<Option<usize>> = vec![None; nets.len()];
    for &b in &order {
        while chain
            .last()
            .is_some_and(|&top| !nets[top].net.contains(&nets[b].net.network()))
        {
            chain.pop();
        }
        for &a in chain.iter().filter(|&&a| nets[a].lan != nets[b].lan) {
            let (later, earlier) = if nets[a].span.start > nets[b].span.start {
                (a, b)
            } else {
                (b, a)
            };
            if first_clash[later].is_none_or(|e| nets[earlier].span.start < nets[e].span.start) {
                first_clash[later] = Some(earlier);
            }
        }
        // A duplicate of the innermost open block in the same LAN adds nothing to the chain.
        let duplicate = chain
            .last()
            .is_some_and(|&top| nets[top].lan == nets[b].lan && nets[top].net == nets[b].net);
        if !duplicate {
            chain.push(b);
        }
    }
    for (later, earlier) in first_clash.iter().enumerate() {
        let Some(earlier) = *earlier else { continue };
        let (b, a) = (&nets[later], &nets[earlier]);
        let line = report.line(&a.span);
        report.at(
            &b.span,
            &b.path,
            format!(
                "subnet {} overlaps {} of {} (line {line})",
                b.net, a.net, a.path
            ),
        );
    }
}

/// A WAN's address must not lie in a LAN's subnet or extra subnets.
fn wan_addresses_outside_lans(
    lans: &[LanDraft<'_>],
    wans: &[WanDraft<'_>],
    report: &mut Report<'_>,
) {
    let lan_nets: Vec<_> = lans.iter().flat_map(LanDraft::subnets).collect();
    for w in wans {
        let Some((address, _)) = w.common.address else {
            continue;
        };
        if let Some((net, path, _)) = lan_nets.iter().find(|(net, _, _)| net.contains(&address)) {
            report.at(
                &w.common.address_span,
                format_args!("{}.address", w.common.path),
                format!("{address} lies inside LAN subnet {net} ({path})"),
            );
        }
    }
}

/// WANs that share an address must own disjoint NAT port ranges.
fn nat_port_overlaps(wans: &[WanDraft<'_>], report: &mut Report<'_>) {
    for (b, wb) in wans.iter().enumerate() {
        let (Some((addr_b, _)), Some(ports_b)) = (wb.common.address, &wb.nat_ports) else {
            continue;
        };
        let clash = wans[..b]
            .iter()
            .find(|wa| match (wa.common.address, &wa.nat_ports) {
                (Some((addr_a, _)), Some(ports_a)) => {
                    addr_a == addr_b
                        && ports_a.start() <= ports_b.end()
                        && ports_b.start() <= ports_a.end()
                }
                _ => false,
            });
        if let Some(wa) = clash {
            let ports_a = wa.nat_ports.clone().unwrap_or(0..=0);
            report.at(
                &wb.nat_ports_span,
                format_args!("{}.nat_ports", wb.common.path),
                format!(
                    "{}-{} overlaps {}-{} of {}, which has the same address {addr_b}; WANs \
                     sharing an address need disjoint nat_ports",
                    ports_b.start(),
                    ports_b.end(),
                    ports_a.start(),
                    ports_a.end(),
                    wa.common.path
                ),
            );
        }
    }
}
