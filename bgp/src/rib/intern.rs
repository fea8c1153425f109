//! The attribute intern table: one shared [`Arc<RouteAttrs>`] per distinct attribute set.
//!
//! Role: make 100,000 routes that share one attribute set cost one pointer each instead of one copy each.
//! Inputs: attribute sets to intern (`intern`) and, implicitly, the reference counts of the `Arc`s handed out.
//! Outputs: the shared `Arc`; entries that no route refers to any more (strong count 1: only the table) are
//! swept when the table has doubled since the last sweep, so the cost is amortised O(1) per intern.

use std::collections::HashSet;
use std::sync::Arc;

use super::RouteAttrs;

/// A hash-consing table of attribute sets, reference counted through `Arc`.
#[derive(Debug, Default)]
pub struct AttrTable {
    set: HashSet<Arc<RouteAttrs>>,
    sweep_at: usize,
}

impl AttrTable {
    /// The shared copy of `attrs` (inserted if new).
    pub fn intern(&mut self, attrs: RouteAttrs) -> Arc<RouteAttrs> {
        if let Some(a) = self.set.get(&attrs) {
            return Arc::clone(a);
        }
        if self.set.len() >= self.sweep_at {
            self.sweep();
        }
        let a = Arc::new(attrs);
        self.set.insert(Arc::clone(&a));
        a
    }

    /// Drop the entries no route refers to.
    pub fn sweep(&mut self) {
        self.set.retain(|a| Arc::strong_count(a) > 1);
        self.sweep_at = (self.set.len() * 2).max(64);
    }

    /// The number of distinct attribute sets held (including unreferenced ones not yet swept).
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// An estimate of the heap bytes the table uses (buckets plus the attribute sets themselves).
    pub fn heap_bytes(&self) -> usize {
        let buckets = self.set.capacity() * (std::mem::size_of::<Arc<RouteAttrs>>() + 1);
        let values: usize = self.set.iter().map(|a| a.heap_bytes()).sum();
        buckets + values
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::PathAttributes;

    #[test]
    fn equal_sets_share_one_arc_and_unused_ones_are_swept() {
        let mut t = AttrTable::default();
        let a = RouteAttrs::new(PathAttributes {
            med: Some(5),
            ..PathAttributes::default()
        });
        let x = t.intern(a.clone());
        let y = t.intern(a);
        assert!(Arc::ptr_eq(&x, &y));
        assert_eq!(t.len(), 1);
        let z = t.intern(RouteAttrs::new(PathAttributes::default()));
        assert_eq!(t.len(), 2);
        drop(z);
        t.sweep();
        assert_eq!(t.len(), 1);
        drop((x, y));
        t.sweep();
        assert!(t.is_empty());
    }
}
