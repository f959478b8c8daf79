//! The UA core's call table: a slab addressed by generational handles, so a
//! handle to a call that has ended (and whose slot was reused) finds nothing
//! instead of the wrong call.

/// A handle on a call in the UA core: a slot and the generation that filled it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct CallId {
    index: u32,
    generation: u32,
}

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.index, self.generation)
    }
}

enum Entry<T> {
    /// Boxed so that a free slot costs a few bytes, not a call's size: the
    /// table keeps the capacity of its busiest moment.
    Occupied(u32, Box<T>),
    Vacant,
}

/// Values addressed by [`CallId`]; freed slots are reused with a new generation.
/// Generations come from one counter for the whole table, so handles stay
/// distinct even after the table is emptied and its memory given back.
pub(crate) struct Slab<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    len: usize,
    next_generation: u32,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
            next_generation: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value` and returns its handle.
    pub(crate) fn insert(&mut self, value: T) -> CallId {
        self.len += 1;
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        if let Some(index) = self.free.pop() {
            if let Some(slot) = self.entries.get_mut(index as usize) {
                *slot = Entry::Occupied(generation, Box::new(value));
                return CallId { index, generation };
            }
        }
        let index = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        self.entries
            .push(Entry::Occupied(generation, Box::new(value)));
        CallId { index, generation }
    }

    pub(crate) fn get(&self, id: CallId) -> Option<&T> {
        match self.entries.get(id.index as usize)? {
            Entry::Occupied(g, v) if *g == id.generation => Some(v),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, id: CallId) -> Option<&mut T> {
        match self.entries.get_mut(id.index as usize)? {
            Entry::Occupied(g, v) if *g == id.generation => Some(v),
            _ => None,
        }
    }

    /// Takes the value out; its handle (and every copy of it) is then dead.
    pub(crate) fn remove(&mut self, id: CallId) -> Option<T> {
        let slot = self.entries.get_mut(id.index as usize)?;
        if !matches!(slot, Entry::Occupied(g, _) if *g == id.generation) {
            return None;
        }
        let Entry::Occupied(_, value) = std::mem::replace(slot, Entry::Vacant) else {
            return None;
        };
        self.free.push(id.index);
        self.len -= 1;
        if self.len == 0 {
            // Idle again: give back what the busiest moment took.
            self.entries.clear();
            self.entries.shrink_to_fit();
            self.free.clear();
            self.free.shrink_to_fit();
        }
        Some(*value)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every live handle, with its value.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (CallId, &T)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e {
                Entry::Occupied(g, v) => Some((
                    CallId {
                        index: i as u32,
                        generation: *g,
                    },
                    &**v,
                )),
                Entry::Vacant => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::Slab;

    #[test]
    fn a_dead_handle_finds_nothing_after_its_slot_is_reused() {
        let mut slab = Slab::default();
        let a = slab.insert("a");
        let b = slab.insert("b");
        assert_eq!(slab.remove(a), Some("a"));
        let c = slab.insert("c");
        assert_eq!(slab.get(a), None, "a's slot now holds c");
        assert_eq!(slab.get(c), Some(&"c"));
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.len(), 2);
        assert_eq!(slab.iter().map(|(_, v)| *v).collect::<Vec<_>>(), ["c", "b"]);
        slab.remove(b);
        slab.remove(c);
        assert!(slab.is_empty());
        // Emptied: memory given back; handles from before stay dead.
        let d = slab.insert("d");
        assert_eq!(slab.get(b), None);
        assert_eq!(slab.get(d), Some(&"d"));
    }
}
