//! Registry fields ringmaster does not know, kept as written (issue 17).

use std::collections::HashSet;
use std::sync::Arc;

use crate::raw::ExtraRaw;

/// The value of a registry field ringmaster does not know.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// A string, number, boolean or date, as text: usable in selectors, coverage, `edits[].when`
    /// and file templates.
    Scalar(Arc<str>),
    /// A list or a map: kept (and shown), but not matched on.
    Structured(Box<serde_json::Value>),
    /// Written with no value.
    Null,
}

impl FieldValue {
    /// The text of a scalar.
    pub fn as_scalar(&self) -> Option<&str> {
        match self {
            FieldValue::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// As JSON (scalars as strings).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            FieldValue::Scalar(s) => serde_json::Value::String(s.to_string()),
            FieldValue::Structured(v) => (**v).clone(),
            FieldValue::Null => serde_json::Value::Null,
        }
    }
}

/// A cluster's extra fields, sorted by name. Names and scalar values are interned while a
/// registry loads (`upgradeChannel: stable` on 100,000 clusters is one allocation, not 200,000),
/// and the list is shared: a plan entry carries its cluster's fields for the cost of a pointer.
/// Serialised as a map of the scalar fields (what a reader of a plan or status wants beside
/// the steps).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExtraFields(Arc<[(Arc<str>, FieldValue)]>);

impl serde::Serialize for ExtraFields {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.scalars())
    }
}

impl ExtraFields {
    /// Build from raw fields, interning through `strings`.
    pub fn from_raw(raw: Vec<(String, ExtraRaw)>, strings: &mut Interner) -> ExtraFields {
        let mut v: Vec<(Arc<str>, FieldValue)> = raw
            .into_iter()
            .map(|(k, value)| {
                let value = match value {
                    ExtraRaw::Null => FieldValue::Null,
                    ExtraRaw::Scalar(s) => FieldValue::Scalar(strings.intern(&s)),
                    ExtraRaw::Structured(v) => FieldValue::Structured(Box::new(v)),
                };
                (strings.intern(&k), value)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        ExtraFields(v.into())
    }

    /// The field named `key`.
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.0
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// The text of the scalar field `key`.
    pub fn scalar(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(FieldValue::as_scalar)
    }

    /// Every field, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &FieldValue)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// Every scalar field, by name.
    pub fn scalars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .filter_map(|(k, v)| v.as_scalar().map(|s| (k.as_ref(), s)))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Shares one allocation between equal strings read from many registry files.
#[derive(Debug, Default)]
pub struct Interner(HashSet<Arc<str>>);

impl Interner {
    /// The shared copy of `s`.
    pub fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(hit) = self.0.get(s) {
            return Arc::clone(hit);
        }
        let new: Arc<str> = Arc::from(s);
        self.0.insert(Arc::clone(&new));
        new
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_by_name_and_scalars_interned() {
        let mut strings = Interner::default();
        let a = ExtraFields::from_raw(
            vec![
                ("upgradeChannel".into(), ExtraRaw::Scalar("stable".into())),
                (
                    "backup".into(),
                    ExtraRaw::Structured(serde_json::json!({"p": 1})),
                ),
                ("riskStatus".into(), ExtraRaw::Null),
            ],
            &mut strings,
        );
        let b = ExtraFields::from_raw(
            vec![("upgradeChannel".into(), ExtraRaw::Scalar("stable".into()))],
            &mut strings,
        );
        assert_eq!(a.scalar("upgradeChannel"), Some("stable"));
        assert_eq!(a.scalar("backup"), None);
        assert_eq!(a.scalar("riskStatus"), None);
        assert_eq!(a.get("nope"), None);
        assert_eq!(
            a.scalars().collect::<Vec<_>>(),
            [("upgradeChannel", "stable")]
        );
        let (FieldValue::Scalar(x), FieldValue::Scalar(y)) = (
            a.get("upgradeChannel").unwrap(),
            b.get("upgradeChannel").unwrap(),
        ) else {
            panic!("scalars");
        };
        assert!(Arc::ptr_eq(x, y), "equal values share one allocation");
    }
}
