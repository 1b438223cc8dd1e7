//! Shelf addresses: where on the shelving a box stands.
//!
//! A shelf is one (range, carriage, face, section, level). Its canonical text form is
//! `R{range}-C{carriage}-{L|R}-S{section}-L{level}`, e.g. `R2-C5-L-S3-L4`: numbers without
//! leading zeros, the face as `L` (left) or `R` (right). The parser also accepts lower case
//! and zero-padded numbers (`r02-c05-l-s03-l04`), so that what people type works, but what
//! stackroom stores and prints is always the canonical form.
//!
//! Carriages are numbered from 1 at the left end of the range. The left face of carriage `c`
//! looks into aisle `c - 1`, its right face into aisle `c`; aisle `k` is the gap between
//! carriages `k` and `k + 1`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One side of a carriage.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Face {
    Left,
    Right,
}

impl Face {
    /// The letter used in the canonical address.
    pub fn letter(self) -> char {
        match self {
            Face::Left => 'L',
            Face::Right => 'R',
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Face::Left => "left",
            Face::Right => "right",
        }
    }

    fn zh(self) -> &'static str {
        match self {
            Face::Left => "左",
            Face::Right => "右",
        }
    }

    pub fn from_letter(letter: &str) -> Option<Face> {
        match letter {
            "L" | "l" => Some(Face::Left),
            "R" | "r" => Some(Face::Right),
            _ => None,
        }
    }
}

/// The address of one shelf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShelfAddress {
    pub range: u16,
    pub carriage: u16,
    pub face: Face,
    pub section: u16,
    pub level: u16,
}

/// The aisle through which a shelf is reached: aisle `aisle` of range `range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AisleRef {
    pub range: u16,
    pub aisle: u16,
}

/// Why a text is not a shelf address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{text}' is not a shelf address: {problem} (expected e.g. R2-C5-L-S3-L4: range, carriage, face L|R, section, level)"
)]
pub struct AddressError {
    pub text: String,
    pub problem: String,
}

/// The languages in which an address can be said to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Zh,
}

impl ShelfAddress {
    /// Whether `other` is close enough for its antenna to hear this shelf's tags now and
    /// then: the shelf above, below or beside on the same face, or back to back with it on
    /// the carriage's other face.
    pub fn adjacent(&self, other: &ShelfAddress) -> bool {
        if self.range != other.range || self.carriage != other.carriage {
            return false;
        }
        let steps = self.section.abs_diff(other.section) + self.level.abs_diff(other.level);
        if self.face == other.face {
            steps == 1
        } else {
            steps == 0
        }
    }

    /// The aisle this shelf is reached through, if its face looks into one (the outer face of
    /// a range's end carriage looks at the wall). `carriages` is the number in the range.
    pub fn aisle(&self, carriages: u16) -> Option<AisleRef> {
        let aisle = match self.face {
            Face::Left => self.carriage.checked_sub(1)?,
            Face::Right => self.carriage,
        };
        (aisle >= 1 && aisle < carriages).then_some(AisleRef {
            range: self.range,
            aisle,
        })
    }

    /// The address in words, e.g. "range 2, carriage 5, left, section 3, level 4" or
    /// "2区 05列 左 3节 4层".
    pub fn human(&self, language: Language) -> String {
        match language {
            Language::En => format!(
                "range {}, carriage {}, {}, section {}, level {}",
                self.range,
                self.carriage,
                self.face.as_str(),
                self.section,
                self.level
            ),
            Language::Zh => format!(
                "{}区 {:02}列 {} {}节 {}层",
                self.range,
                self.carriage,
                self.face.zh(),
                self.section,
                self.level
            ),
        }
    }
}

impl fmt::Display for ShelfAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "R{}-C{}-{}-S{}-L{}",
            self.range,
            self.carriage,
            self.face.letter(),
            self.section,
            self.level
        )
    }
}

impl FromStr for ShelfAddress {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |problem: String| AddressError {
            text: text.to_string(),
            problem,
        };
        let parts: Vec<&str> = text.trim().split('-').collect();
        let [range, carriage, face, section, level] = parts[..] else {
            return Err(fail(format!(
                "it has {} part(s) separated by '-', an address has 5",
                parts.len()
            )));
        };
        let number = |part: &str, prefix: char, name: &str| -> Result<u16, AddressError> {
            let mut chars = part.chars();
            let first = chars.next();
            if !first.is_some_and(|c| c.eq_ignore_ascii_case(&prefix)) {
                return Err(fail(format!("the {name} must start with '{prefix}'")));
            }
            let digits = chars.as_str();
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(fail(format!(
                    "the {name} needs a number after '{prefix}', got '{digits}'"
                )));
            }
            match digits.parse::<u16>() {
                Ok(0) => Err(fail(format!("the {name} is numbered from 1, got 0"))),
                Ok(n) => Ok(n),
                Err(_) => Err(fail(format!("the {name} number {digits} is too large"))),
            }
        };
        Ok(ShelfAddress {
            range: number(range, 'R', "range")?,
            carriage: number(carriage, 'C', "carriage")?,
            face: Face::from_letter(face)
                .ok_or_else(|| fail(format!("the face must be L or R, got '{face}'")))?,
            section: number(section, 'S', "section")?,
            level: number(level, 'L', "level")?,
        })
    }
}

impl Serialize for ShelfAddress {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ShelfAddress {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn address() -> impl Strategy<Value = ShelfAddress> {
        (
            1u16..,
            1u16..,
            prop_oneof![Just(Face::Left), Just(Face::Right)],
            1u16..,
            1u16..,
        )
            .prop_map(|(range, carriage, face, section, level)| ShelfAddress {
                range,
                carriage,
                face,
                section,
                level,
            })
    }

    proptest! {
        #[test]
        fn canonical_form_round_trips(a in address()) {
            let text = a.to_string();
            let parsed: ShelfAddress = text.parse().unwrap();
            prop_assert_eq!(parsed, a);
            prop_assert_eq!(parsed.to_string(), text);
        }

        #[test]
        fn parser_never_panics(text in "\\PC{0,30}") {
            let _ = text.parse::<ShelfAddress>();
        }

        #[test]
        fn lenient_input_formats_canonically(a in address(), pad in 0usize..3) {
            let z = "0".repeat(pad);
            let text = format!(
                "r{z}{}-c{z}{}-{}-s{z}{}-l{z}{}",
                a.range, a.carriage, a.face.letter().to_ascii_lowercase(), a.section, a.level
            );
            prop_assert_eq!(text.parse::<ShelfAddress>().unwrap(), a);
        }
    }

    #[test]
    fn human_forms() {
        let a: ShelfAddress = "R2-C5-L-S3-L4".parse().unwrap();
        assert_eq!(
            a.human(Language::En),
            "range 2, carriage 5, left, section 3, level 4"
        );
        assert_eq!(a.human(Language::Zh), "2区 05列 左 3节 4层");
    }

    #[test]
    fn invalid_addresses_say_what_is_wrong() {
        let cases = [
            ("", "part(s)"),
            ("R2-C5-L-S3", "4 part(s)"),
            ("R2-C5-X-S3-L4", "face must be L or R"),
            ("R0-C5-L-S3-L4", "numbered from 1"),
            ("Q2-C5-L-S3-L4", "range must start with 'R'"),
            ("R2-C-L-S3-L4", "carriage needs a number"),
            ("R2-C5-L-S3-L99999", "too large"),
            ("R2-C+5-L-S3-L4", "carriage needs a number"),
        ];
        for (text, expected) in cases {
            let err = text.parse::<ShelfAddress>().unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn faces_look_into_their_aisles() {
        let at = |c, face| ShelfAddress {
            range: 1,
            carriage: c,
            face,
            section: 1,
            level: 1,
        };
        assert_eq!(
            at(1, Face::Left).aisle(10),
            None,
            "wall side of the first carriage"
        );
        assert_eq!(at(1, Face::Right).aisle(10).unwrap().aisle, 1);
        assert_eq!(at(2, Face::Left).aisle(10).unwrap().aisle, 1);
        assert_eq!(at(10, Face::Left).aisle(10).unwrap().aisle, 9);
        assert_eq!(
            at(10, Face::Right).aisle(10),
            None,
            "wall side of the last carriage"
        );
    }
}
