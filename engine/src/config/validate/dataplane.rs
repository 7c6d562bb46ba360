//! `[dataplane]`: the I/O backend and its settings, all optional.

use toml::Spanned;

use super::check;
use crate::config::model::{Backend, DataplaneConfig, XdpMode};
use crate::config::raw::RawDataplane;
use crate::config::source::Report;
use crate::config::values;

const BACKENDS: [(&str, Backend); 3] = [
    ("auto", Backend::Auto),
    ("afxdp", Backend::AfXdp),
    ("tun", Backend::Tun),
];

const XDP_MODES: [(&str, XdpMode); 3] = [
    ("auto", XdpMode::Auto),
    ("native", XdpMode::Native),
    ("generic", XdpMode::Generic),
];

/// Fewest and most UMEM frames a worker may have.
const UMEM_FRAMES: (i64, i64) = (512, 262_144);

pub(super) fn validate(
    raw: Option<&Spanned<RawDataplane>>,
    report: &mut Report<'_>,
) -> Option<DataplaneConfig> {
    let defaults = DataplaneConfig::default();
    let Some(raw) = raw else {
        return Some(defaults);
    };
    let d = raw.get_ref();
    let backend = match &d.backend {
        None => Some(defaults.backend),
        Some(b) => check(
            values::keyword(b.get_ref(), &BACKENDS),
            &b.span(),
            "dataplane.backend",
            report,
        ),
    };
    let xdp_mode = match &d.xdp_mode {
        None => Some(defaults.xdp_mode),
        Some(m) => check(
            values::keyword(m.get_ref(), &XDP_MODES),
            &m.span(),
            "dataplane.xdp_mode",
            report,
        ),
    };
    let umem_frames = match &d.umem_frames {
        None => Some(defaults.umem_frames),
        Some(n) => check(
            umem_frames(*n.get_ref()),
            &n.span(),
            "dataplane.umem_frames",
            report,
        ),
    };
    Some(DataplaneConfig {
        backend: backend?,
        xdp_mode: xdp_mode?,
        umem_frames: umem_frames?,
    })
}

/// A power of two within [`UMEM_FRAMES`].
fn umem_frames(value: i64) -> Result<u32, String> {
    let n = values::int_in(value, UMEM_FRAMES.0, UMEM_FRAMES.1)?;
    let n = u32::try_from(n).map_err(|_| "out of range".to_string())?;
    if !n.is_power_of_two() {
        return Err(format!("must be a power of two (got {n})"));
    }
    Ok(n)
}
