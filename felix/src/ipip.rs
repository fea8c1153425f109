//! IP-in-IP: whether this kernel can build IPIP tunnels, and what becomes of pools that ask for them.
//!
//! The probe ([`probe`]) asks the kernel to create an `ipip` link inside a throwaway network namespace
//! (a short-lived thread unshares one, so nothing is left on the host: the namespace and the link go
//! with the thread). "Not supported" answers mean the kernel has no IPIP; other failures (no privilege
//! to make a namespace) leave the answer unknown. The decision ([`refusal`]) is pure: given a pool that
//! asks for IPIP and what the probe found, the message that refuses the pool's IPIP part, or nothing.
//!
//! Felix builds no IPIP tunnels itself: on a kernel without IPIP it refuses the IPIP part of such a pool
//! with a message saying why and what to do instead (BGP peering with the ToR), and keeps programming
//! everything else (endpoints, policy, the pool's nat-outgoing). `calicoctl pool add --ipip` uses the
//! same probe and message.

use ipnet::IpNet;

use crate::sys;
use calico_netlink::route::RTM_NEWLINK;
use calico_netlink::socket::Socket;
use calico_netlink::{Message, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST};

const NLM_F_EXCL: u16 = 0x200;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
/// `EOPNOTSUPP`: what `RTM_NEWLINK` answers for a link kind the kernel does not know.
const EOPNOTSUPP: i32 = 95;
/// `EPROTONOSUPPORT` and `EAFNOSUPPORT`: other ways of saying "not built in".
const EPROTONOSUPPORT: i32 = 93;
const EAFNOSUPPORT: i32 = 97;

/// The probe link's name (only ever created inside the throwaway namespace).
const PROBE_LINK: &str = "caliipipprobe";

/// What the probe found out about this kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpipSupport {
    /// An ipip link could be created.
    Available,
    /// The kernel refused to create an ipip link as not supported; `reason` is its answer.
    Missing { reason: String },
    /// The probe itself could not run (e.g. no privilege to create a network namespace).
    Unknown { reason: String },
}

/// The `RTM_NEWLINK` request that creates an ipip link called `name` (no endpoints: a bare device).
pub fn new_ipip_link(name: &str, seq: u32) -> Vec<u8> {
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    let mut m = Message::new(RTM_NEWLINK, flags, seq);
    m.push_raw(&[0u8; 16]); // struct ifinfomsg: family, type, index, flags, change all zero
    m.attr_str(IFLA_IFNAME, name);
    m.begin_nest(IFLA_LINKINFO);
    m.attr_str(IFLA_INFO_KIND, "ipip");
    m.end_nest();
    m.finish()
}

/// Classifies the kernel's answer to [`new_ipip_link`]: `None` is success, `Some(errno)` a refusal.
pub fn classify(answer: Option<i32>) -> IpipSupport {
    match answer {
        None => IpipSupport::Available,
        Some(errno @ (EOPNOTSUPP | EPROTONOSUPPORT | EAFNOSUPPORT)) => IpipSupport::Missing {
            reason: std::io::Error::from_raw_os_error(errno).to_string(),
        },
        Some(errno) => IpipSupport::Unknown {
            reason: format!(
                "creating an ipip link failed: {}",
                std::io::Error::from_raw_os_error(errno)
            ),
        },
    }
}

/// Asks the kernel whether it can build IPIP tunnels, by creating an ipip link in a throwaway network
/// namespace. Needs `CAP_SYS_ADMIN` and `CAP_NET_ADMIN`; without them the answer is
/// [`IpipSupport::Unknown`]. Takes a few milliseconds.
pub fn probe() -> IpipSupport {
    let run = || -> IpipSupport {
        if let Err(e) = sys::unshare_netns() {
            return IpipSupport::Unknown {
                reason: format!("cannot create a network namespace to test in: {e}"),
            };
        }
        let mut socket = match Socket::open(None) {
            Ok(s) => s,
            Err(e) => {
                return IpipSupport::Unknown {
                    reason: format!("cannot open a netlink socket: {e}"),
                }
            }
        };
        let seq = socket.next_seq();
        match socket.transact_each(&new_ipip_link(PROBE_LINK, seq), &[seq]) {
            Ok(failed) => classify(failed.first().map(|&(_, errno)| errno)),
            Err(e) => IpipSupport::Unknown {
                reason: format!("creating an ipip link: {e}"),
            },
        }
        // The thread ends here: its namespace, and the link if one was made, go with it.
    };
    std::thread::spawn(run)
        .join()
        .unwrap_or_else(|_| IpipSupport::Unknown {
            reason: "the probe thread panicked".into(),
        })
}

/// What the user can do instead of IPIP (the end of every refusal).
pub const INSTEAD: &str =
    "use BGP peering with the ToR for hosts in different subnets, or remove --ipip";

/// The refusal of `pool`'s IPIP part given what the probe found, or `None` when the kernel has IPIP.
/// An unknown answer is a refusal too: Felix cannot promise tunnels it could not check.
pub fn refusal(pool: &IpNet, support: &IpipSupport) -> Option<String> {
    match support {
        IpipSupport::Available => None,
        IpipSupport::Missing { reason } => Some(format!(
            "pool {pool} asks for IPIP, but this kernel has no IPIP support (creating an ipip link \
             failed: {reason}); {INSTEAD}"
        )),
        IpipSupport::Unknown { reason } => Some(format!(
            "pool {pool} asks for IPIP, but whether this kernel supports IPIP could not be checked \
             ({reason}); {INSTEAD}"
        )),
    }
}

/// Felix's verdict on the IPIP part of each pool that asks for it, given what the probe found: the
/// refused pools with their messages. Felix builds no tunnels, so on a kernel with IPIP the pool is
/// refused as well, saying so.
pub fn felix_refusals(pools: &[IpNet], support: &IpipSupport) -> Vec<(IpNet, String)> {
    pools
        .iter()
        .map(|pool| {
            let message = refusal(pool, support).unwrap_or_else(|| {
                format!(
                    "pool {pool} asks for IPIP; this kernel supports it, but this Felix builds no \
                     IPIP tunnels; {INSTEAD}"
                )
            });
            (*pool, message)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_netlink::{parse_attrs, parse_messages};

    #[test]
    fn the_probe_request_is_a_bare_ipip_link() {
        let msg = new_ipip_link(PROBE_LINK, 9);
        let m = &parse_messages(&msg)[0];
        assert_eq!(m.ty, RTM_NEWLINK);
        assert_eq!(m.seq, 9);
        assert_eq!(
            m.flags & NLM_F_EXCL,
            NLM_F_EXCL,
            "never touches an existing link"
        );
        let attrs = parse_attrs(&m.body[16..]);
        assert_eq!(attrs[0], (IFLA_IFNAME, &b"caliipipprobe\0"[..]));
        assert_eq!(attrs[1].0, IFLA_LINKINFO);
        assert_eq!(parse_attrs(attrs[1].1), [(IFLA_INFO_KIND, &b"ipip\0"[..])]);
        assert!(
            PROBE_LINK.len() < 16,
            "interface names have at most 15 bytes"
        );
    }

    #[test]
    fn not_supported_means_missing_and_other_errors_unknown() {
        assert_eq!(classify(None), IpipSupport::Available);
        assert!(
            matches!(classify(Some(95)), IpipSupport::Missing { reason } if reason.contains("not supported"))
        );
        assert!(matches!(classify(Some(93)), IpipSupport::Missing { .. }));
        assert!(
            matches!(classify(Some(1)), IpipSupport::Unknown { reason } if reason.contains("creating an ipip link failed"))
        );
    }

    #[test]
    fn a_kernel_without_ipip_refuses_the_pool_saying_what_why_and_what_instead() {
        let pool: IpNet = "10.65.0.0/16".parse().unwrap();
        let missing = classify(Some(EOPNOTSUPP));
        assert_eq!(
            refusal(&pool, &missing).unwrap(),
            "pool 10.65.0.0/16 asks for IPIP, but this kernel has no IPIP support (creating an ipip \
             link failed: Operation not supported (os error 95)); use BGP peering with the ToR for \
             hosts in different subnets, or remove --ipip"
        );
        assert_eq!(refusal(&pool, &IpipSupport::Available), None);
        let unknown = IpipSupport::Unknown {
            reason: "no privilege".into(),
        };
        let text = refusal(&pool, &unknown).unwrap();
        assert!(text.contains("could not be checked (no privilege)") && text.contains(INSTEAD));
    }

    #[test]
    fn felix_refuses_every_ipip_pool_and_says_why() {
        let pools: Vec<IpNet> = vec![
            "10.65.0.0/16".parse().unwrap(),
            "10.66.0.0/16".parse().unwrap(),
        ];
        let missing = classify(Some(EOPNOTSUPP));
        let refused = felix_refusals(&pools, &missing);
        assert_eq!(refused.len(), 2);
        assert_eq!(refused[1].0, pools[1]);
        assert!(refused[1]
            .1
            .starts_with("pool 10.66.0.0/16 asks for IPIP, but this kernel has no IPIP"));
        let available = felix_refusals(&pools[..1], &IpipSupport::Available);
        assert!(
            available[0].1.contains("builds no IPIP tunnels"),
            "{}",
            available[0].1
        );
        assert!(felix_refusals(&[], &missing).is_empty());
    }
}
