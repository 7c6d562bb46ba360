//! Link faults for failover tests: cutting a WAN link, and an ISP that silently drops
//! everything it would forward while its link stays up.

use crate::error::Result;
use crate::plan::ISP_CUSTOMER_IF;
use crate::topology::Topology;

/// nftables table that [`Topology::blackhole_isp`] adds in an ISP namespace.
pub const BLACKHOLE_TABLE: &str = "fwt_blackhole";

impl Topology {
    /// Takes WAN `i`'s link down (`up = false`) or up again, on the ISP side (`cust0`): the
    /// router's `wan{i}` loses carrier, as when a modem's cable is pulled.
    pub fn set_wan_link(&self, i: usize, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        self.isp(i)
            .ip(&["link", "set", ISP_CUSTOMER_IF, state])
            .map(drop)
    }

    /// Makes ISP `i` drop everything it forwards, in both directions (`on = true`), or
    /// forward again. Links stay up and the ISP's own addresses still answer (ARP, ping of
    /// the gateway): only health checks that look past the gateway notice.
    pub fn blackhole_isp(&self, i: usize, on: bool) -> Result<()> {
        let isp = self.isp(i);
        // Deleting first makes both calls idempotent.
        let _ = isp.exec(&["nft", "delete", "table", "inet", BLACKHOLE_TABLE]);
        if on {
            isp.nft(&format!(
                "table inet {BLACKHOLE_TABLE} {{\n  chain forward {{\n    type filter hook forward priority 0; policy drop;\n  }}\n}}\n"
            ))?;
        }
        Ok(())
    }
}
