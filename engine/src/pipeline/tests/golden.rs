//! Golden packet table: each step is a packet in on an interface and the exact packet that
//! must come out, and where (or the drop reason). The steps run in order on one router, so
//! replies find the sessions their requests created. Expected packets are built from scratch
//! with full checksums, so they also check the incremental checksum updates.

use etherparse::icmpv4::TimeExceededCode;
use etherparse::Icmpv4Type;

use std::time::Duration;

use super::harness::*;
use super::packets::*;
use crate::device::memory::MemoryDevice;
use crate::device::{FrameMemory, FramePool, CHUNK_SIZE, HEADROOM};
use crate::forwarder::Forwarder;
use crate::neighbors::StaticNeighbors;
use crate::packet::Medium;
use crate::pipeline::{DropReason, Verdict};

enum Expect {
    Forward(u8, Vec<u8>),
    Drop(DropReason),
    Kernel,
}

struct Step {
    name: &'static str,
    ingress: u8,
    input: Vec<u8>,
    expect: Expect,
}

fn fwd(name: &'static str, ingress: u8, input: Pkt, egress: u8, output: Pkt) -> Step {
    Step {
        name,
        ingress,
        input: input.bytes(),
        expect: Expect::Forward(egress, output.bytes()),
    }
}

fn time_exceeded() -> Icmpv4Type {
    Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit)
}

fn table() -> Vec<Step> {
    let a = |p| (HOST_A, p);
    let b = |p| (HOST_B, p);
    let s = |p| (SERVER, p);
    let isp1 = |p| (ISP1_ADDR, p);
    let isp2 = |p| (ISP2_ADDR, p);
    let router = std::net::Ipv4Addr::new(198, 51, 100, 1);

    // The UDP DNS query as it left by isp2, quoted by a router that dropped it.
    let dns_out = udp(isp2(25001), s(53)).ttl(63).bytes();
    let dns_in_lan = udp(a(25001), s(53)).ttl(63).bytes();
    // A DNS reply as delivered to host A, quoted in A's port unreachable.
    let reply_at_a = udp(s(53), a(25001)).ttl(62).bytes();
    let reply_as_sent = udp(s(53), isp2(25001)).ttl(62).bytes();
    let tcp_out = tcp(isp1(25000), s(443), PSH_ACK)
        .ttl(63)
        .payload(b"GET / HTTP/1.1\r\n")
        .bytes();
    let tcp_in_lan = tcp(a(25000), s(443), PSH_ACK)
        .ttl(63)
        .payload(b"GET / HTTP/1.1\r\n")
        .bytes();
    let expired = udp(a(25003), s(9)).ttl(1).bytes();

    let frag_udp = udp(a(25002), s(53)).payload(&[0x5a; 64]);
    let (frag1_in, frag2_in) = fragments(&frag_udp.bytes(), 24);
    let (frag1_out, frag2_out) = fragments(&frag_udp.translated(isp2(25002), s(53)).bytes(), 24);

    vec![
        // TCP: handshake, data, close. First balanced flow goes to isp1 (weight 3); the source
        // port lies in isp1's NAT range and is free, so it is preserved.
        fwd(
            "tcp syn out",
            LAN,
            tcp(a(25000), s(443), SYN),
            ISP1,
            tcp(isp1(25000), s(443), SYN).ttl(63),
        ),
        fwd(
            "tcp syn-ack in",
            ISP1,
            tcp(s(443), isp1(25000), SYN_ACK),
            LAN,
            tcp(s(443), a(25000), SYN_ACK).ttl(63),
        ),
        fwd(
            "tcp ack out",
            LAN,
            tcp(a(25000), s(443), ACK),
            ISP1,
            tcp(isp1(25000), s(443), ACK).ttl(63),
        ),
        fwd(
            "tcp data out",
            LAN,
            tcp(a(25000), s(443), PSH_ACK).payload(b"GET / HTTP/1.1\r\n"),
            ISP1,
            tcp(isp1(25000), s(443), PSH_ACK)
                .ttl(63)
                .payload(b"GET / HTTP/1.1\r\n"),
        ),
        fwd(
            "tcp data in",
            ISP1,
            tcp(s(443), isp1(25000), PSH_ACK).payload(b"HTTP/1.1 200 OK\r\n"),
            LAN,
            tcp(s(443), a(25000), PSH_ACK)
                .ttl(63)
                .payload(b"HTTP/1.1 200 OK\r\n"),
        ),
        Step {
            name: "icmp error in about tcp (8 quoted bytes: TCP checksum not quoted)",
            ingress: ISP1,
            input: icmp_error(
                router,
                ISP1_ADDR,
                64,
                Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::Port),
                &tcp_out,
                28,
            ),
            expect: Expect::Forward(
                LAN,
                icmp_error(
                    router,
                    HOST_A,
                    63,
                    Icmpv4Type::DestinationUnreachable(
                        etherparse::icmpv4::DestUnreachableHeader::Port,
                    ),
                    &tcp_in_lan,
                    28,
                ),
            ),
        },
        Step {
            name: "icmp error in about tcp (whole segment quoted)",
            ingress: ISP1,
            input: icmp_error(
                router,
                ISP1_ADDR,
                64,
                time_exceeded(),
                &tcp_out,
                tcp_out.len(),
            ),
            expect: Expect::Forward(
                LAN,
                icmp_error(
                    router,
                    HOST_A,
                    63,
                    time_exceeded(),
                    &tcp_in_lan,
                    tcp_in_lan.len(),
                ),
            ),
        },
        fwd(
            "tcp fin out",
            LAN,
            tcp(a(25000), s(443), FIN_ACK),
            ISP1,
            tcp(isp1(25000), s(443), FIN_ACK).ttl(63),
        ),
        fwd(
            "tcp fin in",
            ISP1,
            tcp(s(443), isp1(25000), FIN_ACK),
            LAN,
            tcp(s(443), a(25000), FIN_ACK).ttl(63),
        ),
        fwd(
            "tcp last ack out",
            LAN,
            tcp(a(25000), s(443), ACK),
            ISP1,
            tcp(isp1(25000), s(443), ACK).ttl(63),
        ),
        // A second connection, closed by RST from the server.
        fwd(
            "tcp syn 2 out",
            LAN,
            tcp(a(25100), s(443), SYN),
            ISP1,
            tcp(isp1(25100), s(443), SYN).ttl(63),
        ),
        fwd(
            "tcp rst in",
            ISP1,
            tcp(s(443), isp1(25100), RST),
            LAN,
            tcp(s(443), a(25100), RST).ttl(63),
        ),
        // UDP both ways; the DNS rule sends it out isp2.
        fwd(
            "udp dns out",
            LAN,
            udp(a(25001), s(53)),
            ISP2,
            udp(isp2(25001), s(53)).ttl(63),
        ),
        fwd(
            "udp dns in",
            ISP2,
            udp(s(53), isp2(25001)),
            LAN,
            udp(s(53), a(25001)).ttl(63),
        ),
        Step {
            name: "icmp error in about udp",
            ingress: ISP2,
            input: icmp_error(
                router,
                ISP2_ADDR,
                64,
                time_exceeded(),
                &dns_out,
                dns_out.len(),
            ),
            expect: Expect::Forward(
                LAN,
                icmp_error(
                    router,
                    HOST_A,
                    63,
                    time_exceeded(),
                    &dns_in_lan,
                    dns_in_lan.len(),
                ),
            ),
        },
        Step {
            name: "icmp error out about udp (host A's port unreachable)",
            ingress: LAN,
            input: icmp_error(
                HOST_A,
                SERVER,
                64,
                Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::Port),
                &reply_at_a,
                reply_at_a.len(),
            ),
            expect: Expect::Forward(
                ISP2,
                icmp_error(
                    ISP2_ADDR,
                    SERVER,
                    63,
                    Icmpv4Type::DestinationUnreachable(
                        etherparse::icmpv4::DestUnreachableHeader::Port,
                    ),
                    &reply_as_sent,
                    reply_as_sent.len(),
                ),
            ),
        },
        // ICMP echo: the third balanced decision (isp1, isp1, isp2, isp1 for weights 3:1) goes
        // to isp2; the identifier lies in the NAT range and is preserved.
        fwd(
            "echo request out",
            LAN,
            echo_request(HOST_A, SERVER, 21000),
            ISP2,
            echo_request(ISP2_ADDR, SERVER, 21000).ttl(63),
        ),
        fwd(
            "echo reply in",
            ISP2,
            echo_reply(SERVER, ISP2_ADDR, 21000),
            LAN,
            echo_reply(SERVER, HOST_A, 21000).ttl(63),
        ),
        // TTL expiry: time exceeded from the router's LAN address, back to the sender.
        Step {
            name: "ttl expired",
            ingress: LAN,
            input: expired.clone(),
            expect: Expect::Forward(
                LAN,
                icmp_error(
                    LAN_ADDR,
                    HOST_A,
                    64,
                    time_exceeded(),
                    &expired,
                    expired.len(),
                ),
            ),
        },
        // Hairpin: B has a session out isp1 (the fourth balanced decision), then A reaches B's
        // external address and port; A appears to B as its own mapping on that WAN, and B's
        // answer takes the same way back.
        fwd(
            "hairpin: b out",
            LAN,
            tcp(b(26000), s(80), SYN),
            ISP1,
            tcp(isp1(26000), s(80), SYN).ttl(63),
        ),
        fwd(
            "hairpin: a to b's external port",
            LAN,
            tcp(a(25500), isp1(26000), SYN),
            LAN,
            tcp(isp1(25500), b(26000), SYN).ttl(63),
        ),
        fwd(
            "hairpin: b answers a's external port",
            LAN,
            tcp(b(26000), isp1(25500), SYN_ACK),
            LAN,
            tcp(isp1(26000), a(25500), SYN_ACK).ttl(63),
        ),
        // Fragments: the first carries the UDP header and is translated with it; the second
        // follows the first's translation.
        Step {
            name: "first fragment out",
            ingress: LAN,
            input: frag1_in,
            expect: Expect::Forward(ISP2, frag1_out),
        },
        Step {
            name: "later fragment out",
            ingress: LAN,
            input: frag2_in.clone(),
            expect: Expect::Forward(ISP2, frag2_out),
        },
        // Unsolicited and local traffic.
        Step {
            name: "unsolicited to a nat port",
            ingress: ISP1,
            input: tcp(s(443), isp1(25999), SYN).bytes(),
            expect: Expect::Drop(DropReason::NoSessionInbound),
        },
        Step {
            name: "unknown remote to a live mapping",
            ingress: ISP1,
            input: tcp((SERVER2, 443), isp1(25000), ACK).bytes(),
            expect: Expect::Drop(DropReason::NoSessionInbound),
        },
        Step {
            name: "to the box's own port on a wan",
            ingress: ISP1,
            input: tcp(s(443), isp1(22), SYN).bytes(),
            expect: Expect::Kernel,
        },
        Step {
            name: "ping to the router's lan address",
            ingress: LAN,
            input: echo_request(HOST_A, LAN_ADDR, 5).bytes(),
            expect: Expect::Kernel,
        },
        Step {
            // (any other segment without a session is answered with a reset: wan_down.rs)
            name: "tcp reset without a session",
            ingress: LAN,
            input: tcp(a(25300), s(443), RST).bytes(),
            expect: Expect::Drop(DropReason::TcpNotSyn),
        },
        Step {
            name: "echo reply from the lan without a session",
            ingress: LAN,
            input: echo_reply(HOST_A, SERVER, 99).bytes(),
            expect: Expect::Drop(DropReason::NoSessionOutbound),
        },
    ]
}

#[test]
fn golden_table() {
    let mut router = Router::new(Medium::Ip);
    for step in table() {
        let (verdict, out) = router.send(step.ingress, &step.input);
        match step.expect {
            Expect::Forward(egress, expected) => {
                assert_eq!(verdict, Verdict::Forward(egress), "{}: verdict", step.name);
                assert_eq!(hex(&out), hex(&expected), "{}: bytes", step.name);
            }
            Expect::Drop(reason) => assert_eq!(verdict, Verdict::Drop(reason), "{}", step.name),
            Expect::Kernel => assert_eq!(verdict, Verdict::Kernel, "{}", step.name),
        }
    }
}

/// The same table through the in-memory device and the forwarder, as a worker drives its
/// device: each step's frame is received from the device and what leaves is what the device
/// was given to send, on the expected interface.
#[test]
fn golden_table_through_the_device() {
    let Router { dp, counters, .. } = Router::new(Medium::Ip);
    let mut forwarder = Forwarder::new(Medium::Ip, &dp.plan, counters.clone(), BATCH);
    let memory = FrameMemory::new(BATCH, CHUNK_SIZE, HEADROOM).expect("frame memory");
    let mut device = MemoryDevice::new(Medium::Ip, FramePool::new(&memory).expect("pool"));
    let neighbors = StaticNeighbors::new();
    let now = Duration::from_secs(1);
    for step in table() {
        device.inject(step.ingress, &step.input);
        let before = match &step.expect {
            Expect::Drop(reason) => counters.drops(*reason),
            _ => 0,
        };
        let received = forwarder
            .poll(&mut device, &dp, &neighbors, now)
            .expect("memory device");
        assert_eq!(received, 1, "{}", step.name);
        let sent = device.take_sent();
        match step.expect {
            Expect::Forward(egress, expected) => {
                assert_eq!(sent.len(), 1, "{}: one frame out", step.name);
                assert_eq!(sent[0].iface, egress, "{}: egress", step.name);
                assert_eq!(hex(&sent[0].bytes), hex(&expected), "{}: bytes", step.name);
            }
            Expect::Drop(reason) => {
                assert!(sent.is_empty(), "{}: nothing out", step.name);
                assert_eq!(counters.drops(reason), before + 1, "{}", step.name);
            }
            Expect::Kernel => {
                assert!(sent.is_empty(), "{}: nothing out", step.name);
                assert_eq!(forwarder.output().kernel(), &[0], "{}", step.name);
                let to_kernel = device.take_to_kernel();
                assert_eq!(to_kernel.len(), 1, "{}: through the kernel sink", step.name);
                assert_eq!(to_kernel[0].iface, step.ingress, "{}", step.name);
                assert_eq!(hex(&to_kernel[0].bytes), hex(&step.input), "{}", step.name);
            }
        }
        assert_eq!(device.outstanding(), 0, "{}: every frame back", step.name);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Malformed inputs, as static bytes: each is dropped under its own counter, none panics.
#[test]
fn malformed_inputs() {
    static EMPTY: [u8; 0] = [];
    static TRUNCATED_IP: [u8; 10] = [0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17];
    static IHL_TOO_SMALL: [u8; 20] = [
        0x44, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 192, 168, 1, 10, 8, 8, 4, 4,
    ];
    static TOTAL_LEN_TOO_BIG: [u8; 20] = [
        0x45, 0, 0x05, 0xdc, 0, 0, 0, 0, 64, 17, 0, 0, 192, 168, 1, 10, 8, 8, 4, 4,
    ];
    // A correct header (checksum 0xad22) with proto TCP and no room for the TCP header.
    static TCP_TRUNCATED: [u8; 24] = [
        0x45, 0, 0, 24, 0, 0, 0, 0, 64, 6, 0xad, 0x22, 192, 168, 1, 10, 8, 8, 4, 4, 0x61, 0xa8,
        0x01, 0xbb,
    ];
    static IPV6: [u8; 40] = {
        let mut p = [0u8; 40];
        p[0] = 0x60;
        p
    };
    let mut router = Router::new(Medium::Ip);
    router.expect_drop(LAN, &EMPTY, DropReason::MalformedIpv4);
    router.expect_drop(LAN, &TRUNCATED_IP, DropReason::MalformedIpv4);
    router.expect_drop(LAN, &IHL_TOO_SMALL, DropReason::MalformedIpv4);
    router.expect_drop(LAN, &TOTAL_LEN_TOO_BIG, DropReason::MalformedIpv4);
    router.expect_drop(LAN, &TCP_TRUNCATED, DropReason::MalformedTransport);
    router.expect_drop(LAN, &IPV6, DropReason::MalformedIpv6);

    let mut bad_sum = udp((HOST_A, 1000), (SERVER, 53)).bytes();
    bad_sum[10] ^= 0xff;
    router.expect_drop(LAN, &bad_sum, DropReason::BadIpChecksum);

    let (_, later) = fragments(
        &udp((HOST_A, 1000), (SERVER, 53)).payload(&[1; 64]).bytes(),
        24,
    );
    router.expect_drop(LAN, &later, DropReason::FragmentWithoutFirst);

    // Unknown interface id.
    router.expect_drop(
        200,
        &udp((HOST_A, 1000), (SERVER, 53)).bytes(),
        DropReason::UnknownInterface,
    );
    assert_eq!(
        router.dp.tables.conntrack.len(),
        0,
        "no malformed packet created a session"
    );
}

#[test]
fn tcp_truncated_header_bytes_are_consistent() {
    // Guards the static array above: its IP header checksum is right, so the drop is for the
    // transport header.
    assert_eq!(
        crate::packet::checksum::full(&[
            0x45, 0, 0, 24, 0, 0, 0, 0, 64, 6, 0xad, 0x22, 192, 168, 1, 10, 8, 8, 4, 4
        ]),
        0
    );
}
