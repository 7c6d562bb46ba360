//! `[[lan]]` tables, each on its own (cross-checks are in `topology`).

use std::net::Ipv4Addr;
use std::ops::Range;

use ipnet::Ipv4Net;
use toml::Spanned;

use super::check;
use super::interface::{self, InterfaceDraft};
use crate::config::model::Lan;
use crate::config::raw::RawLan;
use crate::config::source::Report;
use crate::config::values;

/// A LAN whose fields were checked one by one; `None` fields were reported.
#[derive(Debug)]
pub(super) struct LanDraft<'r> {
    pub path: String,
    /// Span of the `[[lan]]` header.
    pub header: Range<usize>,
    pub name: Option<&'r Spanned<String>>,
    pub interface: Option<&'r Spanned<String>>,
    pub address: Option<(Ipv4Addr, Ipv4Net)>,
    pub address_span: Range<usize>,
    /// The valid extra subnets with their index in the list and their spans; `extra_ok` is
    /// false if any was invalid.
    pub extra: Vec<(usize, Ipv4Net, Range<usize>)>,
    pub extra_ok: bool,
}

pub(super) fn draft<'r>(
    index: usize,
    raw: &'r Spanned<RawLan>,
    report: &mut Report<'_>,
) -> LanDraft<'r> {
    let lan = raw.get_ref();
    let InterfaceDraft {
        path,
        header,
        name,
        interface,
        address,
        address_span,
    } = interface::draft(
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
            format_args!("{path}.extra_subnets[{j}]"),
            report,
        ) {
            Some(net) => extra.push((j, net, s.span())),
            None => extra_ok = false,
        }
    }
    LanDraft {
        path,
        header,
        name,
        interface,
        address,
        address_span,
        extra,
        extra_ok,
    }
}

impl LanDraft<'_> {
    pub(super) fn build(&self) -> Option<Lan> {
        let (address, subnet) = self.address?;
        if !self.extra_ok {
            return None;
        }
        Some(Lan {
            name: self.name?.get_ref().clone(),
            interface: self.interface?.get_ref().clone(),
            address,
            subnet,
            extra_subnets: self.extra.iter().map(|(_, n, _)| *n).collect(),
        })
    }

    /// The LAN's subnet and extra subnets that are known, each with its key path and span.
    pub(super) fn subnets(&self) -> Vec<(Ipv4Net, String, Range<usize>)> {
        let own = self.address.map(|(_, net)| {
            (
                net,
                format!("{}.address", self.path),
                self.address_span.clone(),
            )
        });
        own.into_iter()
            .chain(self.extra.iter().map(|(j, net, span)| {
                (
                    *net,
                    format!("{}.extra_subnets[{j}]", self.path),
                    span.clone(),
                )
            }))
            .collect()
    }
}
