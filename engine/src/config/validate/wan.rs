//! `[[wan]]` tables, each on its own (cross-checks are in `topology`).

use std::net::Ipv4Addr;
use std::ops::{Range, RangeInclusive};

use ipnet::Ipv4Net;
use toml::Spanned;

use super::health;
use super::interface::{self, InterfaceDraft};
use super::{check, required};
use crate::config::model::Wan;
use crate::config::raw::{IntOrStr, RawProbe, RawWan};
use crate::config::source::Report;
use crate::config::values;
use prober::core::ProbeConfig;

/// Default `nat_ports`.
pub(crate) const DEFAULT_NAT_PORTS: RangeInclusive<u16> = 20000..=59999;

/// A WAN whose fields were checked one by one; `None` fields were reported.
#[derive(Debug)]
pub(super) struct WanDraft<'r> {
    /// The keys every interface table has.
    pub common: InterfaceDraft<'r>,
    pub gateway: Option<Ipv4Addr>,
    pub weight: Option<u32>,
    pub tier: Option<u8>,
    pub nat_ports: Option<RangeInclusive<u16>>,
    /// Span of `nat_ports`, or of `address` when `nat_ports` is not given.
    pub nat_ports_span: Range<usize>,
    pub probe: Option<Option<ProbeConfig>>,
}

/// `probe_defaults`: the `[health.probe]` table, whose keys the WAN's `probe` keys override.
pub(super) fn draft<'r>(
    index: usize,
    raw: &'r Spanned<RawWan>,
    probe_defaults: Option<&RawProbe>,
    report: &mut Report<'_>,
) -> WanDraft<'r> {
    let wan = raw.get_ref();
    let common = interface::draft(
        "wan",
        index,
        raw.span(),
        wan.name.as_ref(),
        wan.interface.as_ref(),
        wan.address.as_ref(),
        report,
    );
    let path = &common.path;
    let gateway = required(
        wan.gateway.as_ref(),
        &common.header,
        path,
        "gateway",
        report,
    )
    .and_then(|g| gateway(g, common.address, path, report));
    let weight = match &wan.weight {
        None => Some(1),
        Some(w) => weight(w, format_args!("{path}.weight"), report),
    };
    let tier = match &wan.tier {
        None => Some(1),
        Some(t) => tier(t, format_args!("{path}.tier"), report),
    };
    let nat_ports = match &wan.nat_ports {
        None => Some(DEFAULT_NAT_PORTS),
        Some(p) => check(
            nat_ports(p.get_ref()),
            &p.span(),
            format_args!("{path}.nat_ports"),
            report,
        ),
    };
    let name = common.name.map_or("", |n| n.get_ref().as_str());
    let probe = health::probe(name, path, wan.probe.as_ref(), probe_defaults, report);
    WanDraft {
        probe,
        nat_ports_span: wan
            .nat_ports
            .as_ref()
            .map_or_else(|| common.address_span.clone(), |p| p.span()),
        common,
        gateway,
        weight,
        tier,
        nat_ports,
    }
}

/// Parses the gateway and checks it against the WAN's subnet (when that is known).
fn gateway(
    raw: &Spanned<String>,
    address: Option<(Ipv4Addr, Ipv4Net)>,
    path: &str,
    report: &mut Report<'_>,
) -> Option<Ipv4Addr> {
    let key = format!("{path}.gateway");
    let gw = check(values::parse_ipv4(raw.get_ref()), &raw.span(), &key, report)?;
    let Some((own, subnet)) = address else {
        return Some(gw);
    };
    let problem = if !subnet.contains(&gw) {
        Some(format!("{gw} is outside the WAN's subnet {subnet}"))
    } else if gw == own {
        Some(format!("{gw} is the WAN's own address"))
    } else if subnet.prefix_len() <= 30 && (gw == subnet.network() || gw == subnet.broadcast()) {
        Some(format!(
            "{gw} is the network or broadcast address of {subnet}"
        ))
    } else {
        None
    };
    match problem {
        Some(message) => {
            report.at(&raw.span(), key, message);
            None
        }
        None => Some(gw),
    }
}

/// A weight: 1..=u32::MAX.
pub(super) fn weight(
    raw: &Spanned<i64>,
    path: impl std::fmt::Display,
    report: &mut Report<'_>,
) -> Option<u32> {
    check(
        values::int_in(*raw.get_ref(), 1, i64::from(u32::MAX)),
        &raw.span(),
        path,
        report,
    )
    .and_then(|w| u32::try_from(w).ok())
}

/// A tier: 1..=255.
pub(super) fn tier(
    raw: &Spanned<i64>,
    path: impl std::fmt::Display,
    report: &mut Report<'_>,
) -> Option<u8> {
    check(
        values::int_in(*raw.get_ref(), 1, 255),
        &raw.span(),
        path,
        report,
    )
    .and_then(|t| u8::try_from(t).ok())
}

/// `nat_ports`: a port range whose first port is not a reserved one.
fn nat_ports(raw: &IntOrStr) -> Result<RangeInclusive<u16>, String> {
    let range = values::parse_port_range(raw)?;
    if *range.start() < 1024 {
        return Err(format!(
            "first port {} is below 1024: reserved ports cannot be used for NAT",
            range.start()
        ));
    }
    Ok(range)
}

impl WanDraft<'_> {
    pub(super) fn build(&self) -> Option<Wan> {
        let (address, subnet) = self.common.address?;
        Some(Wan {
            name: self.common.name?.get_ref().clone(),
            interface: self.common.interface?.get_ref().clone(),
            address,
            subnet,
            gateway: self.gateway?,
            weight: self.weight?,
            tier: self.tier?,
            nat_ports: self.nat_ports.clone()?,
            probe: self.probe.clone()?,
        })
    }
}
