//! A hash map that grows in small steps.
//!
//! A busy endpoint's transaction tables hold every transaction of the last
//! 32 s (64·T1: Timer J and L), hundreds of thousands at a few thousand calls
//! a second. A single `HashMap` doubles when it fills: it rehashes and moves
//! every entry at once, and at 2^18 entries that pause (hundreds of
//! milliseconds on a shared core) lands on whichever request arrives then.
//! [`ShardMap`] splits the entries over [`SHARDS`] tables by their hash, so a
//! doubling moves one shard's entries only (a 64th), and it keeps each entry's
//! hash beside it so growing never hashes a key again. A lookup hashes its key
//! once: by default SipHash, keyed per map like `std`'s `HashMap`, as keys
//! may be branches and Call-IDs chosen by peers; a key that carries its own
//! hash (a `TransactionKey`) or is our own number (a transaction's id) goes
//! through [`Prehashed`], which only mixes that number.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};

use hashbrown::HashTable;

/// Number of tables a [`ShardMap`] spreads its entries over.
pub(crate) const SHARDS: usize = 64;

/// A shard is shrunk once it is less than an eighth full and holds more than
/// this many slots: memory goes back after a burst without churn at low load.
const SHRINK_ABOVE: usize = 64;

struct Entry<K, V> {
    hash: u64,
    key: K,
    value: V,
}

/// A hash map split into [`SHARDS`] tables; see the [module docs](self).
pub(crate) struct ShardMap<K, V, S = RandomState> {
    hasher: S,
    shards: Box<[HashTable<Entry<K, V>>]>,
    len: usize,
}

impl<K, V, S: Default> Default for ShardMap<K, V, S> {
    fn default() -> Self {
        ShardMap {
            hasher: S::default(),
            shards: (0..SHARDS).map(|_| HashTable::new()).collect(),
            len: 0,
        }
    }
}

/// The hasher of keys that are one number already: a hash computed once
/// when the key was made (with keys drawn per process, so peers cannot aim
/// at a bucket), or a counter of ours. It multiplies the number by an odd
/// constant (a bijection, Fibonacci hashing), which spreads a counter over
/// the high bits (the shard, hashbrown's tag) as well as the low (the
/// bucket). Only for keys whose `Hash` writes a `u64` or two: other writes
/// are folded in byte by byte, correct but slow.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Prehashed;

impl BuildHasher for Prehashed {
    type Hasher = PrehashedHasher;

    fn build_hasher(&self) -> PrehashedHasher {
        PrehashedHasher(0)
    }
}

/// See [`Prehashed`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(29) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl<K: fmt::Debug, V: fmt::Debug, S> fmt::Debug for ShardMap<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The shard of a hash: bits hashbrown does not use inside a table (it takes
/// the bucket from the low bits and its tag from the top seven), so the
/// entries of one shard still spread over all its buckets and tags.
fn shard_of(hash: u64) -> usize {
    (hash >> 32) as usize % SHARDS
}

impl<K, V, S> ShardMap<K, V, S> {
    /// Every entry, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|e| (&e.key, &e.value)))
    }

    /// Every key, in no particular order.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.iter().map(|(k, _)| k)
    }
}

impl<K: Hash + Eq, V, S: BuildHasher + Default> ShardMap<K, V, S> {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        self.shards[shard_of(hash)]
            .find(hash, |e| e.key.borrow() == key)
            .map(|e| &e.value)
    }

    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        self.shards[shard_of(hash)]
            .find_mut(hash, |e| e.key.borrow() == key)
            .map(|e| &mut e.value)
    }

    pub(crate) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Inserts `value` under `key`; gives back the value it replaces.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let hash = self.hash(&key);
        match self.shards[shard_of(hash)].find_mut(hash, |e| e.key == key) {
            Some(e) => Some(std::mem::replace(&mut e.value, value)),
            None => {
                self.shards[shard_of(hash)]
                    .insert_unique(hash, Entry { hash, key, value }, |e| e.hash);
                self.len += 1;
                None
            }
        }
    }

    /// The value under `key`, inserted from `make` if there is none.
    pub(crate) fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let hash = self.hash(&key);
        let shard = &mut self.shards[shard_of(hash)];
        let entry = match shard.find_entry(hash, |e| e.key == key) {
            Ok(found) => found,
            Err(absent) => {
                self.len += 1;
                absent.into_table().insert_unique(
                    hash,
                    Entry {
                        hash,
                        key,
                        value: make(),
                    },
                    |e| e.hash,
                )
            }
        };
        &mut entry.into_mut().value
    }

    /// Removes `key`; a shard left sparse after a burst gives memory back
    /// (amortized O(1): a shrink moves at most a quarter of the entries
    /// removed since its last resize).
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let shard = &mut self.shards[shard_of(hash)];
        let (entry, _) = shard
            .find_entry(hash, |e| e.key.borrow() == key)
            .ok()?
            .remove();
        self.len -= 1;
        if shard.is_empty() {
            // An empty shard holds nothing: a table kept after a burst would
            // pin the allocator's pages (64 per map) that the burst's records
            // shared with it.
            *shard = HashTable::new();
        } else if shard.capacity() > SHRINK_ABOVE && shard.len() < shard.capacity() / 8 {
            shard.shrink_to(shard.len() * 2, |e| e.hash);
        }
        Some(entry.value)
    }

    /// Slots allocated over all shards (for tests and memory accounting).
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.shards.iter().map(HashTable::capacity).sum()
    }

    /// The most slots any one shard holds: a growth moves at most this many
    /// entries.
    #[cfg(test)]
    fn largest_shard(&self) -> usize {
        self.shards
            .iter()
            .map(HashTable::capacity)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_map() {
        let mut m: ShardMap<String, u32> = ShardMap::new();
        assert_eq!(m.insert("a".into(), 1), None);
        assert_eq!(m.insert("b".into(), 2), None);
        assert_eq!(m.insert("a".into(), 3), Some(1));
        assert_eq!(m.len(), 2);
        assert_eq!(m.get("a"), Some(&3));
        assert!(m.contains_key("b"));
        *m.get_mut("b").expect("b") += 10;
        assert_eq!(m.get("b"), Some(&12));
        *m.get_or_insert_with("c".into(), || 7) += 1;
        *m.get_or_insert_with("c".into(), || 100) += 1;
        assert_eq!(m.get("c"), Some(&9));
        assert_eq!(m.len(), 3);
        let mut all: Vec<(String, u32)> = m.iter().map(|(k, v)| (k.clone(), *v)).collect();
        all.sort();
        assert_eq!(all, [("a".into(), 3), ("b".into(), 12), ("c".into(), 9)]);
        assert_eq!(m.remove("a"), Some(3));
        assert_eq!(m.remove("a"), None);
        assert_eq!(m.get("a"), None);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn grows_a_shard_at_a_time_and_gives_memory_back() {
        grows_and_shrinks::<RandomState>();
        // A counter through the multiply spreads as well as through SipHash.
        grows_and_shrinks::<Prehashed>();
    }

    fn grows_and_shrinks<S: BuildHasher + Default>() {
        let mut m: ShardMap<u64, [u8; 32], S> = ShardMap::new();
        let n = 200_000u64;
        for i in 0..n {
            m.insert(i, [0; 32]);
        }
        assert_eq!(m.len(), n as usize);
        // Entries spread over every shard: none holds more than twice its
        // share, so growing one moves a small part of the map.
        let share = m.capacity() / SHARDS;
        assert!(
            m.largest_shard() <= 2 * share,
            "largest shard {} slots, a fair share {share}",
            m.largest_shard()
        );
        assert!(m.largest_shard() * 16 < n as usize);
        let peak = m.capacity();
        for i in 0..n - 10 {
            assert!(m.remove(&i).is_some());
        }
        assert_eq!(m.len(), 10);
        // Each shard shrinks down to its floor.
        assert!(
            m.capacity() <= SHARDS * SHRINK_ABOVE,
            "{} of {peak} slots kept",
            m.capacity()
        );
        for i in n - 10..n {
            assert!(m.contains_key(&i));
        }
        // Emptied, the map holds no table at all.
        for i in n - 10..n {
            assert!(m.remove(&i).is_some());
        }
        assert_eq!(m.capacity(), 0);
    }
}
