//! `[dataplane]`.

use super::{assert_error, ok, with};
use crate::config::{Backend, DataplaneConfig, XdpMode};

#[test]
fn defaults_when_absent_or_empty() {
    let d = DataplaneConfig::default();
    assert_eq!(ok(&with("")).dataplane, d);
    assert_eq!(ok(&with("[dataplane]\n")).dataplane, d);
    assert_eq!(
        (d.backend, d.xdp_mode, d.umem_frames),
        (Backend::Auto, XdpMode::Auto, 4096)
    );
}

#[test]
fn values() {
    let d = ok(&with(
        "[dataplane]\nbackend = \"afxdp\"\nxdp_mode = \"generic\"\numem_frames = 512\n",
    ))
    .dataplane;
    assert_eq!(
        (d.backend, d.xdp_mode, d.umem_frames),
        (Backend::AfXdp, XdpMode::Generic, 512)
    );
    for (text, backend) in [("tun", Backend::Tun), ("auto", Backend::Auto)] {
        let d = ok(&with(&format!("[dataplane]\nbackend = \"{text}\"\n"))).dataplane;
        assert_eq!(d.backend, backend);
    }
    let d = ok(&with("[dataplane]\nxdp_mode = \"native\"\n")).dataplane;
    assert_eq!(d.xdp_mode, XdpMode::Native);
}

#[test]
fn bad_values_name_their_key() {
    assert_error(
        &with("[dataplane]\nbackend = \"dpdk\"\n"),
        "backend =",
        "dataplane.backend",
        "unknown value \"dpdk\"",
    );
    assert_error(
        &with("[dataplane]\nxdp_mode = \"offload\"\n"),
        "xdp_mode =",
        "dataplane.xdp_mode",
        "unknown value \"offload\"",
    );
    for (value, message) in [
        ("1000", "must be a power of two"),
        ("256", "must be at least 512"),
        ("524288", "must be at most 262144"),
    ] {
        assert_error(
            &with(&format!("[dataplane]\numem_frames = {value}\n")),
            "umem_frames =",
            "dataplane.umem_frames",
            message,
        );
    }
}
