//! Parsers for single values: names, interface names, addresses, subnets, ports, protocols,
//! bounded integers. Each returns the message of a [`ConfigError`](super::ConfigError) on
//! failure; the caller adds line and key path.

use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;

use ipnet::{IpNet, Ipv4Net};

use super::raw::IntOrStr;

/// Longest name of a LAN, WAN, group or rule.
pub(crate) const MAX_NAME_LEN: usize = 64;

/// Names: 1 to 64 ASCII letters, digits, `-`, `_` or `.`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("is longer than {MAX_NAME_LEN} characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "\"{name}\" is not a valid name: use ASCII letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

/// Linux interface names: 1 to 15 bytes, not `.` or `..`, no `/`, `:` or whitespace.
pub(crate) fn check_interface(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if name.len() > 15 {
        return Err(format!(
            "\"{name}\" is longer than 15 bytes, the limit for interface names"
        ));
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(format!(
            "\"{name}\" is not a valid interface name (no '/', ':' or whitespace)"
        ));
    }
    Ok(())
}

/// An IPv4 address such as `198.51.100.1`.
pub(crate) fn parse_ipv4(text: &str) -> Result<Ipv4Addr, String> {
    match text.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Ok(a),
        Ok(IpAddr::V6(_)) => Err(format!("\"{text}\": IPv6 is not supported")),
        Err(_) => Err(format!("\"{text}\" is not an IPv4 address")),
    }
}

/// An interface address with its prefix, such as `192.168.1.1/24`: returns the address and
/// its subnet (network address, host bits cleared). The address must be a usable host
/// address: not the subnet's network or broadcast address (for prefixes up to /30).
pub(crate) fn parse_interface_address(text: &str) -> Result<(Ipv4Addr, Ipv4Net), String> {
    let text = text.trim();
    let net = match text.parse::<IpNet>() {
        Ok(IpNet::V4(net)) => net,
        Ok(IpNet::V6(_)) => return Err(format!("\"{text}\": IPv6 is not supported")),
        Err(_) if parse_ipv4(text).is_ok() => {
            return Err(format!(
                "\"{text}\" has no prefix length; write the address with its subnet, \
                 e.g. \"{text}/24\""
            ))
        }
        Err(_) => {
            return Err(format!(
                "\"{text}\" is not an IPv4 address with prefix length (like \"192.168.1.1/24\")"
            ))
        }
    };
    let address = net.addr();
    if net.prefix_len() <= 30 {
        if address == net.network() {
            return Err(format!(
                "{address} is the network address of {}; give the interface's own address",
                net.trunc()
            ));
        }
        if address == net.broadcast() {
            return Err(format!(
                "{address} is the broadcast address of {}; give the interface's own address",
                net.trunc()
            ));
        }
    }
    Ok((address, net.trunc()))
}

/// A subnet in CIDR notation, or a single address (taken as /32). Host bits are cleared:
/// `10.1.2.3/8` means `10.0.0.0/8`.
pub(crate) fn parse_subnet(text: &str) -> Result<Ipv4Net, String> {
    let trimmed = text.trim();
    if let Ok(net) = trimmed.parse::<IpNet>() {
        return match net {
            IpNet::V4(net) => Ok(net.trunc()),
            IpNet::V6(_) => Err(format!("\"{text}\": IPv6 is not supported")),
        };
    }
    match trimmed.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Ok(Ipv4Net::from(a)),
        Ok(IpAddr::V6(_)) => Err(format!("\"{text}\": IPv6 is not supported")),
        Err(_) => Err(format!(
            "\"{text}\" is not an IPv4 subnet (like \"10.0.0.0/8\") or address"
        )),
    }
}

/// A port or port range: `53`, `"853"` or `"1024-65535"` (inclusive).
pub(crate) fn parse_port_range(value: &IntOrStr) -> Result<RangeInclusive<u16>, String> {
    match value {
        IntOrStr::Int(n) => port_number(*n).map(|p| p..=p),
        IntOrStr::Str(text) => {
            let (first, last) = match text.split_once('-') {
                Some((a, b)) => (a, b),
                None => (text.as_str(), text.as_str()),
            };
            let parse = |s: &str| {
                s.trim().parse::<i64>().map_err(|_| {
                    format!("\"{text}\" is not a port or port range (like 53 or \"1024-65535\")")
                })
            };
            let first = port_number(parse(first)?)?;
            let last = port_number(parse(last)?)?;
            if first > last {
                return Err(format!(
                    "\"{text}\": first port {first} is greater than last port {last}"
                ));
            }
            Ok(first..=last)
        }
    }
}

fn port_number(n: i64) -> Result<u16, String> {
    u16::try_from(n).map_err(|_| format!("port {n} is out of range 0-65535"))
}

/// IP protocol numbers of the protocols that have ports.
pub(crate) const TCP: u8 = 6;
/// See [`TCP`].
pub(crate) const UDP: u8 = 17;
const ICMP: u8 = 1;

/// A protocol: `tcp`, `udp`, `icmp`, `any` (→ `None`) or a number 0-255.
pub(crate) fn parse_proto(value: &IntOrStr) -> Result<Option<u8>, String> {
    match value {
        IntOrStr::Int(n) => u8::try_from(*n)
            .map(Some)
            .map_err(|_| format!("protocol number {n} is out of range 0-255")),
        IntOrStr::Str(text) => match text.as_str() {
            "tcp" => Ok(Some(TCP)),
            "udp" => Ok(Some(UDP)),
            "icmp" => Ok(Some(ICMP)),
            "any" => Ok(None),
            _ => match text.trim().parse::<i64>() {
                Ok(n) => parse_proto(&IntOrStr::Int(n)),
                Err(_) => Err(format!(
                    "unknown protocol \"{text}\"; expected one of \"tcp\", \"udp\", \"icmp\", \
                     \"any\" or a number 0-255"
                )),
            },
        },
    }
}

/// An integer in `min..=max`.
pub(crate) fn int_in(value: i64, min: i64, max: i64) -> Result<i64, String> {
    if value < min {
        Err(format!("must be at least {min}"))
    } else if value > max {
        Err(format!("must be at most {max}"))
    } else {
        Ok(value)
    }
}

/// One of a fixed set of keywords; the error lists them.
pub(crate) fn keyword<T: Copy>(text: &str, allowed: &[(&str, T)]) -> Result<T, String> {
    allowed
        .iter()
        .find(|(k, _)| *k == text)
        .map(|&(_, v)| v)
        .ok_or_else(|| {
            let list: Vec<String> = allowed.iter().map(|(k, _)| format!("\"{k}\"")).collect();
            format!(
                "unknown value \"{text}\"; expected one of {}",
                list.join(", ")
            )
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn names() {
        assert!(check_name("isp-1_a.b").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("has space").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
        assert!(check_interface("veth-isp1").is_ok());
        assert!(check_interface("eth0.100").is_ok());
        assert!(check_interface("sixteen-chars-xx").is_err());
        assert!(check_interface("a/b").is_err());
        assert!(check_interface("..").is_err());
        assert!(check_interface("").is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_interface_address("192.168.1.1/24"),
            Ok(("192.168.1.1".parse().unwrap(), net("192.168.1.0/24")))
        );
        assert!(parse_interface_address("192.168.1.0/24")
            .unwrap_err()
            .contains("network address"));
        assert!(parse_interface_address("192.168.1.255/24")
            .unwrap_err()
            .contains("broadcast address"));
        assert!(parse_interface_address("10.0.0.0/31").is_ok());
        assert!(parse_interface_address("10.0.0.7/32").is_ok());
        assert!(parse_interface_address("192.168.1.1")
            .unwrap_err()
            .contains("no prefix length"));
        assert!(parse_interface_address("fe80::1/64")
            .unwrap_err()
            .contains("IPv6"));
        assert!(parse_interface_address("192.168.1.300/24").is_err());
        assert!(parse_interface_address("192.168.1.1/33").is_err());
        assert_eq!(parse_ipv4("10.0.0.1"), Ok(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(parse_ipv4("::1").unwrap_err().contains("IPv6"));
        assert!(parse_ipv4("10.0.0.1/8").is_err());
    }

    #[test]
    fn subnets() {
        assert_eq!(parse_subnet("10.1.2.3/8"), Ok(net("10.0.0.0/8")));
        assert_eq!(parse_subnet("10.1.2.3"), Ok(net("10.1.2.3/32")));
        assert_eq!(parse_subnet("0.0.0.0/0"), Ok(net("0.0.0.0/0")));
        assert!(parse_subnet("::/0").is_err());
        assert!(parse_subnet("ten").is_err());
    }

    #[test]
    fn ports() {
        let s = |t: &str| parse_port_range(&IntOrStr::Str(t.to_owned()));
        assert_eq!(parse_port_range(&IntOrStr::Int(53)), Ok(53..=53));
        assert_eq!(s("853"), Ok(853..=853));
        assert_eq!(s("1024-65535"), Ok(1024..=65535));
        assert_eq!(s(" 1 - 2 "), Ok(1..=2));
        assert!(s("2-1").unwrap_err().contains("greater than"));
        assert!(s("1-70000").unwrap_err().contains("out of range"));
        assert!(parse_port_range(&IntOrStr::Int(-1)).is_err());
        assert!(s("http").is_err());
        assert!(s("1-2-3").is_err());
        assert!(s("").is_err());
    }

    #[test]
    fn protos() {
        let s = |t: &str| parse_proto(&IntOrStr::Str(t.to_owned()));
        assert_eq!(s("tcp"), Ok(Some(6)));
        assert_eq!(s("udp"), Ok(Some(17)));
        assert_eq!(s("icmp"), Ok(Some(1)));
        assert_eq!(s("any"), Ok(None));
        assert_eq!(s("47"), Ok(Some(47)));
        assert_eq!(parse_proto(&IntOrStr::Int(0)), Ok(Some(0)));
        assert!(parse_proto(&IntOrStr::Int(256))
            .unwrap_err()
            .contains("out of range 0-255"));
        assert!(s("sctp").unwrap_err().contains("\"tcp\", \"udp\""));
    }

    #[test]
    fn ints_and_keywords() {
        assert_eq!(int_in(0, 1, 5), Err("must be at least 1".to_owned()));
        assert_eq!(int_in(6, 1, 5), Err("must be at most 5".to_owned()));
        assert_eq!(int_in(3, 1, 5), Ok(3));
        let allowed = [("a", 1), ("b", 2)];
        assert_eq!(keyword("b", &allowed), Ok(2));
        assert_eq!(
            keyword("c", &allowed),
            Err("unknown value \"c\"; expected one of \"a\", \"b\"".to_owned())
        );
    }
}
