//! Gluon's `_ctx_map`: from a context to the index of its copy, in O(1).
//! Keyed by `Context::slot_key()`, so host contexts of one ordinal (cpu,
//! cpu_pinned, cpu_shared) share a slot as in MXNet 1.9.1.

use crate::context::Context;

/// Context -> copy index, plus the contexts in initialisation order.
#[derive(Debug, Clone, Default)]
pub struct CtxMap {
    list: Vec<Context>,
    /// `slots[kind][device_id]`; kind is `device_typeid & 1`.
    slots: [Vec<Option<u32>>; 2],
}

impl CtxMap {
    /// A map over `ctxs`; a context listed twice maps to its last position (as MXNet).
    pub fn new(ctxs: &[Context]) -> CtxMap {
        let mut map = CtxMap {
            list: ctxs.to_vec(),
            slots: [Vec::new(), Vec::new()],
        };
        for (i, ctx) in ctxs.iter().enumerate() {
            let (kind, id) = ctx.slot_key();
            let slots = &mut map.slots[usize::from(kind & 1)];
            let id = id as usize;
            if slots.len() <= id {
                slots.resize(id + 1, None);
            }
            slots[id] = u32::try_from(i).ok();
        }
        map
    }

    /// The copy index for `ctx`, if the parameter lives there.
    #[inline]
    pub fn index(&self, ctx: Context) -> Option<usize> {
        let (kind, id) = ctx.slot_key();
        self.slots[usize::from(kind & 1)]
            .get(id as usize)
            .copied()
            .flatten()
            .map(|i| i as usize)
    }

    /// The contexts in initialisation order.
    pub fn contexts(&self) -> &[Context] {
        &self.list
    }

    /// Number of contexts.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are no contexts.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_kinds_share_slots() {
        let m = CtxMap::new(&[Context::cpu(1), Context::gpu(0), Context::cpu(0)]);
        assert_eq!(m.index(Context::cpu(1)), Some(0));
        assert_eq!(m.index(Context::cpu_pinned(1)), Some(0));
        assert_eq!(m.index(Context::gpu(0)), Some(1));
        assert_eq!(m.index(Context::cpu_shared(0)), Some(2));
        assert_eq!(m.index(Context::gpu(1)), None);
        assert_eq!(m.index(Context::cpu(7)), None);
    }
}
