//! Blackhole routes for the host's IPAM blocks, as Calico installs them: traffic to an unused address of
//! a block this host announces is dropped here instead of bouncing back to the fabric. The host's own
//! workloads have /32 (/128) routes from Felix, which win by longest prefix.
//!
//! Inputs: the blocks the host owns. Outputs: the kernel's main table holds exactly one blackhole route
//! of [`PROTOCOL`] per block (stale ones, e.g. of a block released while the node was down, removed).

use std::collections::BTreeSet;

use calico_netlink::route::{
    del_blackhole_route, dump_routes, parse_route, set_blackhole_route, RTM_NEWROUTE,
};
use calico_netlink::socket::Socket;
use ipnet::IpNet;

/// The routing protocol number of calico-node's blackhole routes: neither Felix's (80) nor the BGP
/// speaker's (186), so each owner repairs only its own routes.
pub const PROTOCOL: u8 = 81;
const MAIN: u32 = 254;

/// Makes the main table hold exactly `blocks` as blackholes of [`PROTOCOL`]; returns (added, removed).
pub fn sync(blocks: &[IpNet]) -> Result<(usize, usize), calico_netlink::Error> {
    let mut sock = Socket::open(None)?;
    let mut present = BTreeSet::new();
    for v6 in [false, true] {
        let seq = sock.next_seq();
        for body in sock.dump(&dump_routes(v6, seq), RTM_NEWROUTE)? {
            if let Some(r) = parse_route(&body) {
                if r.protocol == PROTOCOL && r.table == MAIN {
                    if let Ok(net) = IpNet::new(r.dst, r.prefix_len) {
                        present.insert(net);
                    }
                }
            }
        }
    }
    let wanted: BTreeSet<IpNet> = blocks.iter().map(IpNet::trunc).collect();
    let mut batch = Vec::new();
    let mut acked = Vec::new();
    let (mut added, mut removed) = (0, 0);
    for net in wanted.difference(&present) {
        let seq = sock.next_seq();
        batch.extend(set_blackhole_route(
            net.network(),
            net.prefix_len(),
            MAIN,
            PROTOCOL,
            seq,
        ));
        acked.push(seq);
        added += 1;
    }
    for net in present.difference(&wanted) {
        let seq = sock.next_seq();
        batch.extend(del_blackhole_route(
            net.network(),
            net.prefix_len(),
            MAIN,
            PROTOCOL,
            seq,
        ));
        acked.push(seq);
        removed += 1;
    }
    if !acked.is_empty() {
        sock.transact(&batch, &acked, "blackhole routes for the host's blocks")?;
    }
    Ok((added, removed))
}
