//! The Loc-RIB entry of one prefix: its paths, compactly.
//!
//! Role: hold the paths of a prefix (every accepted route of every peer, and the local one) with no heap
//! allocation when there is one path, which is the common case. The Loc-RIB path is the only copy of an
//! accepted route: there is no separate Adj-RIB-In map (the peer's counters live in its `PeerState`).
//! Inputs: paths added, replaced and removed by the table; the decision process's ordering.
//! Outputs: the paths as a slice, best first after a decision, and the FIB next hops.
//!
//! Layout: a [`Path`] names its peer by a small slot index ([`LOCAL`] for locally originated routes) that the
//! table maps to the peer's address; a slot is reused only after the peer was removed together with every
//! path it had. [`Paths`] is one path inline, or a boxed slice for several (ECMP, several peers, ADD-PATH); the
//! enum's tag lives in a spare niche of [`Path`], so a [`Dest`] is 32 bytes.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use super::RouteAttrs;
use crate::wire::NextHop;

/// The peer slot of locally originated paths.
pub(super) const LOCAL: u32 = 0;

/// One path in the Loc-RIB.
#[derive(Debug, Clone)]
pub(super) struct Path {
    /// The peer's slot ([`LOCAL`] for local routes).
    pub peer: u32,
    /// The ADD-PATH id it was received with (0 without).
    pub path_id: u32,
    /// The path id we advertise it with over ADD-PATH.
    pub local_id: u32,
    /// Kept through the peer's graceful restart or an enhanced route refresh, until re-sent or swept.
    pub stale: bool,
    pub attrs: Arc<RouteAttrs>,
}

/// The paths of one prefix: none, one inline, or several in an exactly sized boxed slice.
#[derive(Debug, Clone, Default)]
pub(super) enum Paths {
    #[default]
    Empty,
    One(Path),
    Many(Box<[Path]>),
}

impl Deref for Paths {
    type Target = [Path];

    #[inline]
    fn deref(&self) -> &[Path] {
        match self {
            Paths::Empty => &[],
            Paths::One(p) => std::slice::from_ref(p),
            Paths::Many(v) => v,
        }
    }
}

impl DerefMut for Paths {
    #[inline]
    fn deref_mut(&mut self) -> &mut [Path] {
        match self {
            Paths::Empty => &mut [],
            Paths::One(p) => std::slice::from_mut(p),
            Paths::Many(v) => v,
        }
    }
}

impl Paths {
    /// From a vector (inline when it holds one path).
    pub fn from_vec(mut v: Vec<Path>) -> Self {
        match v.len() {
            0 => Paths::Empty,
            1 => v.pop().map_or(Paths::Empty, Paths::One),
            _ => Paths::Many(v.into_boxed_slice()),
        }
    }

    /// The paths as a vector.
    pub fn into_vec(self) -> Vec<Path> {
        match self {
            Paths::Empty => Vec::new(),
            Paths::One(p) => vec![p],
            Paths::Many(v) => v.into_vec(),
        }
    }

    /// Append a path.
    pub fn push(&mut self, p: Path) {
        *self = match std::mem::take(self) {
            Paths::Empty => Paths::One(p),
            Paths::One(a) => Paths::Many(Box::new([a, p])),
            Paths::Many(v) => {
                let mut v = v.into_vec();
                v.reserve_exact(1);
                v.push(p);
                Paths::Many(v.into_boxed_slice())
            }
        };
    }

    /// Remove the path at `i` (which must exist), keeping the order of the others.
    pub fn remove(&mut self, i: usize) -> Path {
        match std::mem::take(self) {
            Paths::Empty => unreachable!("remove from no paths"),
            Paths::One(a) => {
                debug_assert_eq!(i, 0);
                a
            }
            Paths::Many(v) => {
                let mut v = v.into_vec();
                let p = v.remove(i);
                *self = Paths::from_vec(v);
                p
            }
        }
    }

    /// The heap bytes held (none for zero or one path).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Paths::Many(v) => std::mem::size_of_val::<[Path]>(v),
            _ => 0,
        }
    }
}

/// The paths of one prefix: the first `selected` are the multipath set, best first.
///
/// An IPv4 prefix's entry also holds its key (address and length), in what would otherwise be padding: the
/// Loc-RIB's IPv4 table stores bare `Dest`s, 32 bytes each, and finds them by these fields (`loc`).
#[derive(Debug, Clone, Default)]
pub(super) struct Dest {
    pub paths: Paths,
    /// The IPv4 prefix's address, as the IPv4 table keys it (0 in the other table). Set once, at creation.
    v4_addr: u32,
    pub selected: u16,
    /// The IPv4 prefix's length (see `v4_addr`).
    v4_len: u8,
    /// Touched by the input in progress (listed in the batch).
    pub dirty: bool,
}

impl Dest {
    /// An empty entry of the IPv4 table for the prefix `addr`/`len`.
    pub fn for_v4(addr: u32, len: u8) -> Dest {
        Dest {
            v4_addr: addr,
            v4_len: len,
            ..Dest::default()
        }
    }

    /// The IPv4 key it was made with ([`Dest::for_v4`]).
    #[inline]
    pub fn v4_key(&self) -> (u32, u8) {
        (self.v4_addr, self.v4_len)
    }

    /// Set the size of the multipath set (the first `n` paths), at most `u16::MAX`.
    #[inline]
    pub fn set_selected(&mut self, n: usize) {
        self.selected = u16::try_from(n).unwrap_or(u16::MAX);
    }

    /// The position of the path from `peer` with `path_id`.
    #[inline]
    pub fn find(&self, peer: u32, path_id: u32) -> Option<usize> {
        self.paths
            .iter()
            .position(|p| p.peer == peer && p.path_id == path_id)
    }

    /// Remove the path at `i`, keeping `selected` a valid range until the next decision.
    pub fn remove_at(&mut self, i: usize) -> Path {
        let p = self.paths.remove(i);
        if i < self.selected as usize {
            // The selection is recomputed in `finish`; keep the index range valid until then.
            self.selected -= 1;
        }
        p
    }

    /// The next hops to program: none when the best path is local or there is none.
    pub fn fib_next_hops(&self) -> Vec<NextHop> {
        let mut v = Vec::new();
        self.fib_next_hops_into(&mut v);
        v
    }

    /// [`Dest::fib_next_hops`] into `v` (cleared first), allocating only if `v` is too small.
    pub fn fib_next_hops_into(&self, v: &mut Vec<NextHop>) {
        v.clear();
        let n = self.selected as usize;
        if n == 0 || self.paths[0].peer == LOCAL {
            return;
        }
        v.reserve(n);
        for p in &self.paths[..n] {
            if let Some(nh) = p.attrs.next_hop {
                if !v.contains(&nh) {
                    v.push(nh);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Prefix;
    use std::mem::size_of;

    fn path(peer: u32) -> Path {
        Path {
            peer,
            path_id: 0,
            local_id: peer,
            stale: false,
            attrs: Arc::new(RouteAttrs::default()),
        }
    }

    #[test]
    fn layout_is_compact() {
        assert_eq!(size_of::<Path>(), 24);
        assert_eq!(size_of::<Paths>(), 24, "the tag must sit in Path's niche");
        assert_eq!(
            size_of::<Dest>(),
            32,
            "the IPv4 key must sit in Dest's padding"
        );
        assert!(size_of::<(Prefix, Dest)>() <= 56);
    }

    #[test]
    fn one_path_inline_several_boxed_order_kept() {
        let mut d = Paths::default();
        assert!(d.is_empty());
        d.push(path(1));
        assert!(matches!(d, Paths::One(_)));
        assert_eq!(d.heap_bytes(), 0);
        d.push(path(2));
        d.push(path(3));
        assert_eq!(d.iter().map(|p| p.peer).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(d.heap_bytes(), 3 * size_of::<Path>());
        assert_eq!(d.remove(1).peer, 2);
        assert_eq!(d.iter().map(|p| p.peer).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(d.remove(0).peer, 1);
        assert!(matches!(d, Paths::One(ref p) if p.peer == 3));
        d[0].stale = true;
        assert!(d.remove(0).stale);
        assert!(matches!(d, Paths::Empty));
    }

    #[test]
    fn removing_a_selected_path_shrinks_the_selection() {
        let mut d = Dest::default();
        d.paths.push(path(1));
        d.paths.push(path(2));
        d.selected = 2;
        assert_eq!(d.find(2, 0), Some(1));
        assert_eq!(d.find(2, 1), None);
        d.remove_at(0);
        assert_eq!((d.selected, d.paths.len()), (1, 1));
        d.remove_at(0);
        assert_eq!((d.selected, d.paths.len()), (0, 0));
    }
}
