//! A name people read (a room's, a range's, a zone's, a place's), as the config gives it:
//! one text, or one per language (`name = { zh = "一号库房", en = "Stack room 1" }`).
//! The API hands it on as it was given, so the staff page picks the reader's language.
//! Pure.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::shelf::Language;

/// A configured name, in one language or in two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Name {
    /// The same text for every reader.
    One(String),
    /// A text per language.
    Two(Bilingual),
}

/// A name in both of the page's languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Bilingual {
    pub zh: String,
    pub en: String,
}

impl Default for Name {
    fn default() -> Name {
        Name::One(String::new())
    }
}

impl From<&str> for Name {
    fn from(text: &str) -> Name {
        Name::One(text.to_owned())
    }
}

impl From<String> for Name {
    fn from(text: String) -> Name {
        Name::One(text)
    }
}

impl Name {
    /// The name as said in `language`.
    pub fn in_language(&self, language: Language) -> &str {
        match (self, language) {
            (Name::One(text), _) => text,
            (Name::Two(two), Language::Zh) => &two.zh,
            (Name::Two(two), Language::En) => &two.en,
        }
    }

    /// Whether no name was given (the config then names the thing by its id).
    pub fn is_empty(&self) -> bool {
        matches!(self, Name::One(text) if text.trim().is_empty())
    }

    /// Whether a name given per language leaves one of them blank.
    pub fn half_given(&self) -> bool {
        matches!(self, Name::Two(two) if two.zh.trim().is_empty() || two.en.trim().is_empty())
    }
}

/// The English name: logs and the API's English `detail` use it.
impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.in_language(Language::En))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Room {
        name: Name,
    }

    #[test]
    fn a_name_is_one_text_or_one_per_language() {
        let one: Room = toml::from_str(r#"name = "A""#).unwrap();
        assert_eq!(one.name, Name::from("A"));
        assert_eq!(one.name.in_language(Language::Zh), "A");
        let two: Room =
            toml::from_str(r#"name = { zh = "一号库房", en = "Stack room 1" }"#).unwrap();
        assert_eq!(two.name.in_language(Language::Zh), "一号库房");
        assert_eq!(two.name.to_string(), "Stack room 1");
        assert_eq!(
            serde_json::to_value(&two.name).unwrap(),
            serde_json::json!({"zh": "一号库房", "en": "Stack room 1"})
        );
        assert_eq!(serde_json::to_value(&one.name).unwrap(), "A");
    }

    #[test]
    fn a_name_in_other_languages_or_half_given_is_refused() {
        assert!(toml::from_str::<Room>(r#"name = { zh = "库", fr = "salle" }"#).is_err());
        let half: Room = toml::from_str(r#"name = { zh = "库", en = " " }"#).unwrap();
        assert!(half.name.half_given() && !half.name.is_empty());
    }
}
