//! `[[lan]]` tables, each on its own (cross-checks are in `topology`).

use std::ops::Range;

use ipnet::Ipv4Net;
use toml::Spanned;

use super::check;
use super::interface::{self, InterfaceDraft};
use crate::config::model::{Inbound, Lan};
use crate::config::raw::RawLan;
use crate::config::source::Report;
use crate::config::values;

/// A LAN whose fields were checked one by one; `None` fields were reported.
#[derive(Debug)]
pub(super) struct LanDraft<'r> {
    /// The keys every interface table has.
    pub common: InterfaceDraft<'r>,
    /// The valid extra subnets with their index in the list and their spans; `extra_ok` is
    /// false if any was invalid.
    pub extra: Vec<(usize, Ipv4Net, Range<usize>)>,
    pub extra_ok: bool,
    pub inbound: Option<Inbound>,
}

const INBOUND: [(&str, Inbound); 2] = [("drop", Inbound::Drop), ("allow", Inbound::Allow)];

pub(super) fn draft<'r>(
    index: usize,
    raw: &'r Spanned<RawLan>,
    report: &mut Report<'_>,
) -> LanDraft<'r> {
    let lan = raw.get_ref();
    let common = interface::draft(
        "lan",
        index,
        raw.span(),
        lan.name.as_ref(),
        lan.interface.as_ref(),
        lan.address.as_ref(),
        report,
    );
    let mut extra = Vec::new();
    let mut extra_ok = true;
    for (j, s) in lan
        .extra_subnets
        .iter()
        .flat_map(|l| l.get_ref())
        .enumerate()
    {
        match check(
            values::parse_subnet(s.get_ref()),
            &s.span(),
            format_args!("{}.extra_subnets[{j}]", common.path),
            report,
        ) {
            Some(net) => extra.push((j, net, s.span())),
            None => extra_ok = false,
        }
    }
    let inbound = match &lan.inbound {
        None => Some(Inbound::Drop),
        Some(v) => check(
            values::keyword(v.get_ref(), &INBOUND),
            &v.span(),
            format_args!("{}.inbound", common.path),
            report,
        ),
    };
    LanDraft {
        common,
        extra,
        extra_ok,
        inbound,
    }
}

impl LanDraft<'_> {
    pub(super) fn build(&self) -> Option<Lan> {
        let (address, subnet) = self.common.address?;
        if !self.extra_ok {
            return None;
        }
        Some(Lan {
            name: self.common.name?.get_ref().clone(),
            interface: self.common.interface?.get_ref().clone(),
            address,
            subnet,
            extra_subnets: self.extra.iter().map(|(_, n, _)| *n).collect(),
            inbound: self.inbound?,
        })
    }

    /// The LAN's subnet and extra subnets that are known, each with its key path and span.
    pub(super) fn subnets(&self) -> Vec<(Ipv4Net, String, Range<usize>)> {
        let own = self.common.address.map(|(_, net)| {
            (
                net,
                format!("{}.address", self.common.path),
                self.common.address_span.clone(),
            )
        });
        own.into_iter()
            .chain(self.extra.iter().map(|(j, net, span)| {
                (
                    *net,
                    format!("{}.extra_subnets[{j}]", self.common.path),
                    span.clone(),
                )
            }))
            .collect()
    }
}
