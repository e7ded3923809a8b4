//! What clients may send by name only: gifts (whose values the server holds)
//! and reaction kinds. A client names a gift and a count; its value comes
//! from here, never from the client.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::rate::{GIFT_ID_MAX_CHARS, GIFT_MAX_VALUE, validate_reaction};
use super::text::{self, Lines};

/// One gift of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GiftSpec {
    /// The id clients send (`gift_id`).
    pub id: String,
    /// Display name, pushed with the gift.
    pub name: String,
    /// Value of one gift in the app's smallest unit.
    pub value: u64,
}

impl GiftSpec {
    fn new(id: &str, name: &str, value: u64) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            value,
        }
    }
}

/// The gifts of a fresh install (values in the app's smallest unit).
pub fn default_gifts() -> Vec<GiftSpec> {
    vec![
        GiftSpec::new("rose", "Rose", 1),
        GiftSpec::new("heart", "Heart", 5),
        GiftSpec::new("star", "Star", 10),
        GiftSpec::new("cake", "Cake", 50),
        GiftSpec::new("rocket", "Rocket", 500),
        GiftSpec::new("castle", "Castle", 2000),
    ]
}

/// The reactions of a fresh install.
pub fn default_reactions() -> Vec<String> {
    ["❤️", "👍", "😂", "😮", "😢", "👏", "🔥", "🎉"]
        .into_iter()
        .map(String::from)
        .collect()
}

/// Gifts by id.
#[derive(Debug, Clone, Default)]
pub struct GiftCatalog {
    by_id: HashMap<String, GiftSpec>,
}

impl GiftCatalog {
    /// A catalog of `gifts`, or why it cannot be one (an empty, long or
    /// repeated id, a bad name, a value over [`GIFT_MAX_VALUE`]).
    pub fn new(gifts: &[GiftSpec]) -> Result<Self, String> {
        let mut by_id = HashMap::new();
        for gift in gifts {
            let chars = gift.id.chars().count();
            if chars == 0 || chars > GIFT_ID_MAX_CHARS || gift.id.trim() != gift.id {
                return Err(format!(
                    "gift id {:?} must be 1 to {GIFT_ID_MAX_CHARS} characters without surrounding spaces",
                    gift.id
                ));
            }
            text::check("gift id", &gift.id, Lines::One).map_err(|e| e.to_string())?;
            text::check("gift name", &gift.name, Lines::One).map_err(|e| e.to_string())?;
            if gift.value > GIFT_MAX_VALUE {
                return Err(format!(
                    "gift {:?}: value must be at most {GIFT_MAX_VALUE}",
                    gift.id
                ));
            }
            if by_id.insert(gift.id.clone(), gift.clone()).is_some() {
                return Err(format!("gift id {:?} appears twice", gift.id));
            }
        }
        Ok(Self { by_id })
    }

    /// The gift named `id`, if the catalog has it.
    pub fn get(&self, id: &str) -> Option<&GiftSpec> {
        self.by_id.get(id)
    }
}

/// The reaction kinds clients may send.
#[derive(Debug, Clone, Default)]
pub struct ReactionSet {
    kinds: Vec<String>,
}

impl ReactionSet {
    /// A set of `kinds`, or why not (a kind that is not a valid reaction).
    pub fn new(kinds: &[String]) -> Result<Self, String> {
        for kind in kinds {
            validate_reaction(kind).map_err(|e| format!("reaction {kind:?}: {e}"))?;
            text::check("reaction", kind, Lines::One).map_err(|e| e.to_string())?;
        }
        Ok(Self {
            kinds: kinds.to_vec(),
        })
    }

    /// Whether `kind` is in the set.
    pub fn contains(&self, kind: &str) -> bool {
        self.kinds.iter().any(|k| k == kind)
    }

    /// The kinds, in configured order.
    pub fn kinds(&self) -> &[String] {
        &self.kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_catalog_and_reactions_are_valid() {
        let catalog = GiftCatalog::new(&default_gifts()).expect("valid");
        assert_eq!(catalog.get("rose").map(|g| g.value), Some(1));
        assert!(catalog.get("diamond").is_none());
        let reactions = ReactionSet::new(&default_reactions()).expect("valid");
        assert!(reactions.contains("❤️"));
        assert!(!reactions.contains("x"));
    }

    #[test]
    fn bad_catalogs_are_refused() {
        let twice = [GiftSpec::new("a", "A", 1), GiftSpec::new("a", "B", 2)];
        assert!(GiftCatalog::new(&twice).is_err());
        assert!(GiftCatalog::new(&[GiftSpec::new("", "A", 1)]).is_err());
        assert!(GiftCatalog::new(&[GiftSpec::new(" a", "A", 1)]).is_err());
        assert!(GiftCatalog::new(&[GiftSpec::new("a", "A\u{202E}", 1)]).is_err());
        assert!(GiftCatalog::new(&[GiftSpec::new("a", "A", GIFT_MAX_VALUE + 1)]).is_err());
        assert!(ReactionSet::new(&["a b".to_string()]).is_err());
        assert!(ReactionSet::new(&["\u{202E}".to_string()]).is_err());
    }
}
