//! The prefixes whose routes changed while the FIB thread was busy, waiting to be sent to it.
//!
//! Role: remember each changed prefix once, in the order of its last change, compactly enough that a
//! burst of 100,000 IPv4 routes costs little more than 8 bytes a prefix, and give the memory back when
//! drained. Inputs: prefixes ([`Waiting::mark`]). Outputs: the same prefixes, each once, least recently
//! changed first ([`Waiting::pop`]); what their routes are then is the RIB's business, not this queue's.

use std::collections::VecDeque;
use std::net::IpAddr;

use super::v4map::{self, V4Map};
use crate::rib::hash::FastMap;
use crate::wire;

/// Prefixes waiting for the FIB thread, least recently changed first: a prefix that changes again goes
/// to the back (its older entry is skipped: its stamp is no longer the prefix's). That writes first what
/// has settled: with four ECMP peers sending the same routes at different speeds, the prefixes all of them
/// have sent go before the ones the fastest just sent and the others are about to.
///
/// A burst of 100,000 routes waits here whole, so IPv4 prefixes are kept compactly: each queue entry is
/// one `u64` (the prefix and a 24-bit stamp) in chunks of 64 KiB that are freed as they are sent (no
/// doubling copy while a burst arrives), and each prefix's latest stamp lives in a [`V4Map`] (9 bytes a
/// bucket). Stamps wrap at 2^24: an old entry taken for the latest only sends its prefix early, with its
/// state at that time, and the latest entry is then skipped, so each prefix still goes once. Entries
/// superseded by a later change are dropped once they outnumber the waiting prefixes (four peers sending
/// the same routes do not queue each prefix four times).
#[derive(Debug, Default)]
pub(super) struct Waiting {
    v4: ChunkQueue,
    v6: VecDeque<(wire::Prefix, u32)>,
    stamps4: V4Map,
    stamps6: FastMap<wire::Prefix, u32>,
    stamp: u32,
}

impl Waiting {
    pub(super) fn is_empty(&self) -> bool {
        self.stamps4.is_empty() && self.stamps6.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.stamps4.len() + self.stamps6.len()
    }

    pub(super) fn mark(&mut self, prefix: wire::Prefix) {
        self.stamp = self.stamp.wrapping_add(1);
        match prefix.addr() {
            IpAddr::V4(a) => {
                let key = v4map::key(u32::from(a), prefix.len());
                let stamp = self.stamp & v4map::MAX_VALUE;
                if self.stamps4.insert(key, stamp).is_some() {
                    self.v4.superseded += 1;
                }
                self.v4.push(v4map::pack(key, stamp));
                if self.v4.superseded > self.stamps4.len().max(COMPACT_AFTER) {
                    let stamps = &self.stamps4;
                    self.v4.retain(|w| {
                        let (key, stamp) = v4map::unpack(w);
                        stamps.get(key) == Some(stamp)
                    });
                }
            }
            IpAddr::V6(_) => {
                self.stamps6.insert(prefix, self.stamp);
                self.v6.push_back((prefix, self.stamp));
            }
        }
    }

    /// True when nothing waits and no queue chunk is held.
    #[cfg(test)]
    pub(super) fn is_drained(&self) -> bool {
        self.is_empty() && self.v4.chunks.is_empty()
    }

    /// The least recently changed prefix (IPv4 before IPv6), no longer waiting.
    pub(super) fn pop(&mut self) -> Option<wire::Prefix> {
        let found = loop {
            if let Some(word) = self.v4.pop() {
                let (key, stamp) = v4map::unpack(word);
                if self.stamps4.get(key) == Some(stamp) {
                    self.stamps4.remove(key);
                    let (addr, len) = v4map::unkey(key);
                    if let Some(p) = wire::Prefix::new(IpAddr::V4(addr.into()), len) {
                        break Some(p);
                    }
                } else {
                    self.v4.superseded = self.v4.superseded.saturating_sub(1);
                }
            } else if let Some((prefix, stamp)) = self.v6.pop_front() {
                if self.stamps6.get(&prefix) == Some(&stamp) {
                    self.stamps6.remove(&prefix);
                    break Some(prefix);
                }
            } else {
                break None;
            }
        };
        if self.is_empty() {
            // Give back the room a burst took.
            *self = Waiting {
                stamp: self.stamp,
                ..Waiting::default()
            };
        }
        found
    }
}

/// Queue entries per chunk: 64 KiB, at glibc's threshold for a mapping of its own (see
/// [`super::sys::return_large_frees_to_the_kernel`]), so a drained chunk goes back to the kernel.
const CHUNK: usize = 8192;
/// Superseded queue entries tolerated regardless of how few prefixes wait.
const COMPACT_AFTER: usize = 4096;

/// A FIFO of words in fixed-size chunks: it grows a chunk at a time (never copying what it holds) and
/// frees each chunk once it has been read.
#[derive(Debug, Default)]
struct ChunkQueue {
    chunks: VecDeque<Vec<u64>>,
    /// Read position in the front chunk.
    head: usize,
    /// Entries known to be superseded by a later one for the same prefix (kept by [`Waiting`]).
    superseded: usize,
}

impl ChunkQueue {
    fn push(&mut self, word: u64) {
        match self.chunks.back_mut() {
            Some(c) if c.len() < CHUNK => c.push(word),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(word);
                self.chunks.push_back(c);
            }
        }
    }

    fn pop(&mut self) -> Option<u64> {
        let front = self.chunks.front()?;
        let word = front[self.head];
        self.head += 1;
        if self.head == front.len() {
            self.chunks.pop_front();
            self.head = 0;
        }
        Some(word)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum::<usize>() - self.head
    }

    /// Keeps only the words for which `keep` holds, in order.
    fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        let mut kept = ChunkQueue::default();
        while let Some(w) = self.pop() {
            if keep(w) {
                kept.push(w);
            }
        }
        *self = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn p(last: u8) -> wire::Prefix {
        wire::Prefix::new(IpAddr::V4(Ipv4Addr::new(10, 96, 0, last)), 32).unwrap()
    }

    #[test]
    fn waiting_prefixes_of_both_families_come_back_whole_and_once() {
        let mut w = Waiting::default();
        let v6 = wire::Prefix::new("fd00:65::".parse().unwrap(), 122).unwrap();
        let v4 = wire::Prefix::new("10.65.3.0".parse().unwrap(), 26).unwrap();
        w.mark(v6);
        w.mark(v4);
        w.mark(p(9));
        w.mark(v4);
        w.mark(v6);
        assert_eq!(w.len(), 3);
        // IPv4 first, least recently changed first; each once.
        assert_eq!(w.pop(), Some(p(9)));
        assert_eq!(w.pop(), Some(v4));
        assert_eq!(w.pop(), Some(v6));
        assert_eq!(w.pop(), None);
        assert!(w.is_drained());
    }

    #[test]
    fn a_burst_waits_in_chunks_freed_as_it_is_sent() {
        let mut w = Waiting::default();
        let n = CHUNK as u32 * 2 + 5;
        let prefix = |i: u32| wire::Prefix::new(IpAddr::V4((0x0a60_0000 + i).into()), 32).unwrap();
        for i in 0..n {
            w.mark(prefix(i));
        }
        assert_eq!(
            (w.len(), w.v4.len(), w.v4.chunks.len()),
            (n as usize, n as usize, 3)
        );
        for i in 0..CHUNK as u32 {
            assert_eq!(w.pop(), Some(prefix(i)));
        }
        // The first chunk is gone once read.
        assert_eq!(w.v4.chunks.len(), 2);
        for i in CHUNK as u32..n {
            assert_eq!(w.pop(), Some(prefix(i)));
        }
        assert_eq!(w.pop(), None);
        assert!(w.v4.chunks.is_empty());
    }

    #[test]
    fn prefixes_changed_again_and_again_do_not_pile_up_in_the_queue() {
        let mut w = Waiting::default();
        let prefix = |i: u32| wire::Prefix::new(IpAddr::V4((0x0a60_0000 + i).into()), 32).unwrap();
        // Four peers send the same 10 prefixes, 1,000 times over.
        for _ in 0..1000 {
            for _ in 0..4 {
                for i in 0..10 {
                    w.mark(prefix(i));
                }
            }
        }
        assert_eq!(w.len(), 10);
        assert!(w.v4.len() <= 10 + COMPACT_AFTER + 1, "{}", w.v4.len());
        // Each once, in the order of their last change.
        w.mark(prefix(3));
        let got: Vec<wire::Prefix> = std::iter::from_fn(|| w.pop()).collect();
        let want: Vec<wire::Prefix> = [0, 1, 2, 4, 5, 6, 7, 8, 9, 3].map(prefix).to_vec();
        assert_eq!(got, want);
    }
}
