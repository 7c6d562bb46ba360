//! The keys `[[lan]]` and `[[wan]]` tables share: `name`, `interface` and `address`.

use std::net::Ipv4Addr;
use std::ops::Range;

use ipnet::Ipv4Net;
use toml::Spanned;

use super::{check, name, required};
use crate::config::source::Report;
use crate::config::values;

/// The shared keys of an interface table, checked one by one; `None` fields were reported.
#[derive(Debug)]
pub(super) struct InterfaceDraft<'r> {
    /// Key path of the table: `lan[0]`, `wan[2]`.
    pub path: String,
    /// Span of the table's header.
    pub header: Range<usize>,
    pub name: Option<&'r Spanned<String>>,
    pub interface: Option<&'r Spanned<String>>,
    /// The interface address and its subnet (host bits cleared).
    pub address: Option<(Ipv4Addr, Ipv4Net)>,
    /// Span of `address`, or of the header when `address` is missing.
    pub address_span: Range<usize>,
}

/// Checks `name`, `interface` and `address` of the `index`th `[[kind]]` table, whose header
/// spans `header`.
pub(super) fn draft<'r>(
    kind: &str,
    index: usize,
    header: Range<usize>,
    name_raw: Option<&'r Spanned<String>>,
    interface_raw: Option<&'r Spanned<String>>,
    address_raw: Option<&'r Spanned<String>>,
    report: &mut Report<'_>,
) -> InterfaceDraft<'r> {
    let path = format!("{kind}[{index}]");
    let name = name(name_raw, &header, &path, report);
    let interface = required(interface_raw, &header, &path, "interface", report);
    if let Some(i) = interface {
        check(
            values::check_interface(i.get_ref()),
            &i.span(),
            format_args!("{path}.interface"),
            report,
        );
    }
    let address_raw = required(address_raw, &header, &path, "address", report);
    let address = address_raw.and_then(|a| {
        check(
            values::parse_interface_address(a.get_ref()),
            &a.span(),
            format_args!("{path}.address"),
            report,
        )
    });
    InterfaceDraft {
        address_span: address_raw.map_or_else(|| header.clone(), |a| a.span()),
        path,
        header,
        name,
        interface,
        address,
    }
}
