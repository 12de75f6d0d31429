//! A small map from names to values, as a sorted vector.
//!
//! A registry entry has a handful of add-ons, controllers, policy bundles and labels. A
//! `BTreeMap` allocates a whole node (room for eleven entries) for the first one: four maps per
//! cluster cost ~4 KB, 400 MB at 100,000 clusters (issue 17). This keeps exactly the entries,
//! with the part of the `BTreeMap` API the code uses.

use std::collections::BTreeMap;

/// Names → values, sorted by name, no duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameMap<V>(Vec<(String, V)>);

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        NameMap(Vec::new())
    }
}

impl<V> NameMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        NameMap(Vec::new())
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    /// Whether `key` is there.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Set `key`, returning the value it replaced.
    pub fn insert(&mut self, key: String, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    /// Entries in name order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&String, &V)> + ExactSizeIterator {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// Names in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.0.iter().map(|(k, _)| k)
    }

    /// Values in name order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.0.iter().map(|(_, v)| v)
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<V> FromIterator<(String, V)> for NameMap<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        // Through a BTreeMap: sorted, and a later duplicate wins, as with `collect()` into one.
        let sorted: BTreeMap<String, V> = iter.into_iter().collect();
        let mut v: Vec<(String, V)> = sorted.into_iter().collect();
        v.shrink_to_fit();
        NameMap(v)
    }
}

impl<V> From<BTreeMap<String, V>> for NameMap<V> {
    fn from(m: BTreeMap<String, V>) -> Self {
        let mut v: Vec<(String, V)> = m.into_iter().collect();
        v.shrink_to_fit();
        NameMap(v)
    }
}

impl<'a, V> IntoIterator for &'a NameMap<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, V)>,
        fn(&'a (String, V)) -> (&'a String, &'a V),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl<V> std::ops::Index<&str> for NameMap<V> {
    type Output = V;
    /// Panics when `key` is missing, as `BTreeMap`'s index does.
    fn index(&self, key: &str) -> &V {
        match self.get(key) {
            Some(v) => v,
            None => panic!("no entry `{key}` in the map"),
        }
    }
}

impl<V: serde::Serialize> serde::Serialize for NameMap<V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_sorted_map() {
        let mut m: NameMap<u32> = [
            ("b".to_owned(), 2),
            ("a".to_owned(), 1),
            ("b".to_owned(), 3),
        ]
        .into_iter()
        .collect();
        assert_eq!(m.keys().map(String::as_str).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(m.get("b"), Some(&3));
        assert_eq!(m.insert("c".into(), 4), None);
        assert_eq!(m.insert("a".into(), 5), Some(1));
        assert_eq!(
            m.iter().map(|(k, v)| format!("{k}{v}")).collect::<Vec<_>>(),
            ["a5", "b3", "c4"]
        );
        assert!(m.contains_key("c") && !m.contains_key("d"));
        assert_eq!(m.len(), 3);
    }
}
