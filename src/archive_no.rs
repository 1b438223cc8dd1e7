//! The site's archive-number rule (档号规则).
//!
//! Each site numbers its boxes by its own rule, so the rule is configuration: a pattern of
//! literal text and named parts, each part a regular expression, for example
//!
//! ```toml
//! [archive_number]
//! pattern = "{company}-{category}-{cabinet}-{sequence}"
//! series = ["company", "category", "cabinet"]
//! [archive_number.parts]
//! company = "[0-9]{4}"
//! category = "H|L"
//! cabinet = "[0-9]{3}"
//! sequence = "[0-9]{5}"
//! ```
//!
//! The `series` parts name the boxes that belong together on the shelves (same company,
//! category and cabinet): shelf suggestion keeps a series side by side.

use std::collections::BTreeMap;

use regex::Regex;

/// A compiled archive-number rule.
#[derive(Debug, Clone)]
pub struct ArchiveRule {
    pattern: String,
    regex: Regex,
    series: Vec<String>,
    /// The pattern in pieces: literal text, or a part's name.
    pieces: Vec<Piece>,
    /// Digits a part always has, where its expression fixes them (`[0-9]{5}`).
    widths: BTreeMap<String, usize>,
    /// The rule as typed by a person: any case, the pattern's literal text left out or
    /// typed as another separator (see [`ArchiveRule::normalise`]).
    loose: Regex,
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Part(String),
}

/// Why an archive-number rule in the config cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(String);

/// Why an archive number does not follow the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("archive number '{number}' does not follow the site rule {pattern}")]
pub struct NonConforming {
    pub number: String,
    pub pattern: String,
}

impl ArchiveRule {
    /// Compiles `pattern` (literal text with `{part}` placeholders) with the regular
    /// expression of each part. Every placeholder needs a part and every part a placeholder.
    pub fn new(
        pattern: &str,
        parts: &BTreeMap<String, String>,
        series: &[String],
    ) -> Result<ArchiveRule, RuleError> {
        let mut regex = String::from("^");
        let mut used = Vec::new();
        let mut pieces = Vec::new();
        let mut rest = pattern;
        while let Some(open) = rest.find('{') {
            regex.push_str(&regex::escape(&rest[..open]));
            pieces.push(Piece::Text(rest[..open].to_string()));
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| {
                RuleError(format!("pattern '{pattern}' has a '{{' without its '}}'"))
            })?;
            let name = &after[..close];
            let part = parts.get(name).ok_or_else(|| {
                RuleError(format!(
                    "pattern '{pattern}' names part '{name}', which [archive_number.parts] does not define"
                ))
            })?;
            if !is_identifier(name) {
                return Err(RuleError(format!(
                    "part name '{name}' must be letters, digits and '_'"
                )));
            }
            if used.iter().any(|u| u == name) {
                return Err(RuleError(format!(
                    "pattern '{pattern}' uses part '{name}' twice"
                )));
            }
            Regex::new(part).map_err(|e| {
                RuleError(format!(
                    "part '{name}' is not a valid regular expression: {e}"
                ))
            })?;
            regex.push_str(&format!("(?P<{name}>{part})"));
            used.push(name.to_string());
            pieces.push(Piece::Part(name.to_string()));
            rest = &after[close + 1..];
        }
        regex.push_str(&regex::escape(rest));
        pieces.push(Piece::Text(rest.to_string()));
        regex.push('$');
        if let Some(unused) = parts.keys().find(|k| !used.contains(k)) {
            return Err(RuleError(format!(
                "part '{unused}' is defined but the pattern '{pattern}' does not use it"
            )));
        }
        if used.is_empty() {
            return Err(RuleError(format!(
                "pattern '{pattern}' has no {{part}}: name at least one"
            )));
        }
        for s in series {
            if !used.contains(s) {
                return Err(RuleError(format!(
                    "series part '{s}' is not a part of the pattern '{pattern}'"
                )));
            }
        }
        let regex = Regex::new(&regex)
            .map_err(|e| RuleError(format!("pattern '{pattern}' does not compile: {e}")))?;
        let loose: String = pieces
            .iter()
            .map(|piece| match piece {
                Piece::Text(t) if t.is_empty() => String::new(),
                Piece::Text(t) => format!(r"(?:{}|[\s\-_./]*)", regex::escape(t)),
                Piece::Part(name) => format!("(?P<{name}>{})", parts[name]),
            })
            .collect();
        let loose = Regex::new(&format!("(?i)^{loose}$"))
            .map_err(|e| RuleError(format!("pattern '{pattern}' does not compile: {e}")))?;
        let fixed = Regex::new(r"^(?:\[0-9\]|\\d)\{([0-9]+)\}$").expect("a valid expression");
        let widths = parts
            .iter()
            .filter_map(|(name, expr)| {
                let width = fixed.captures(expr)?.get(1)?.as_str().parse().ok()?;
                Some((name.clone(), width))
            })
            .collect();
        Ok(ArchiveRule {
            pattern: pattern.to_string(),
            regex,
            series: series.to_vec(),
            pieces,
            widths,
            loose,
        })
    }

    /// The number a person meant by `typed`: written without the pattern's dashes, with
    /// spaces or dots instead, or in the wrong case (`0451h00100001`, `0451 H 001 00001`
    /// for `0451-H-001-00001`). `None` if `typed` already follows the rule, or cannot be
    /// read as a number that does.
    pub fn normalise(&self, typed: &str) -> Option<String> {
        if self.regex.is_match(typed) {
            return None;
        }
        let caps = self.loose.captures(typed)?;
        let build = |case: fn(&str) -> String| -> String {
            self.pieces
                .iter()
                .map(|piece| match piece {
                    Piece::Text(t) => t.clone(),
                    Piece::Part(name) => {
                        caps.name(name).map_or(String::new(), |m| case(m.as_str()))
                    }
                })
                .collect()
        };
        [
            build(str::to_string),
            build(str::to_uppercase),
            build(str::to_lowercase),
        ]
        .into_iter()
        .find(|n| self.regex.is_match(n))
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The names of the pattern's parts, in order.
    pub fn parts(&self) -> impl Iterator<Item = &str> {
        self.regex.capture_names().flatten()
    }

    /// The names of the parts that make a series.
    pub fn series_parts(&self) -> impl Iterator<Item = &str> {
        self.series.iter().map(String::as_str)
    }

    /// The value of part `name` in `number`, if the number follows the rule.
    pub fn part_of(&self, number: &str, name: &str) -> Option<String> {
        self.regex
            .captures(number)?
            .name(name)
            .map(|m| m.as_str().to_string())
    }

    /// Checks a number against the rule and returns its series key: the values of the
    /// series parts joined by '-' (the whole number when the rule names no series).
    pub fn check(&self, number: &str) -> Result<String, NonConforming> {
        let caps = self.regex.captures(number).ok_or_else(|| NonConforming {
            number: number.to_string(),
            pattern: self.pattern.clone(),
        })?;
        if self.series.is_empty() {
            return Ok(number.to_string());
        }
        let values: Vec<&str> = self
            .series
            .iter()
            .map(|name| caps.name(name).map_or("", |m| m.as_str()))
            .collect();
        Ok(values.join("-"))
    }
}

impl ArchiveRule {
    /// The part that numbers the boxes of a series: the one part outside the series.
    pub fn sequence_part(&self) -> Result<&str, String> {
        let outside: Vec<&str> = self
            .parts()
            .filter(|p| !self.series.iter().any(|s| s == p))
            .collect();
        match outside.as_slice() {
            [one] => Ok(one),
            _ => Err(format!(
                "numbering needs exactly one part of {} outside archive_number.series; it has {}",
                self.pattern,
                if outside.is_empty() {
                    "none".to_string()
                } else {
                    outside.join(", ")
                }
            )),
        }
    }

    /// The sequence number of `number` in its series.
    pub fn sequence_of(&self, number: &str) -> Option<u64> {
        self.part_of(number, self.sequence_part().ok()?)?
            .parse()
            .ok()
    }

    /// The archive number of box `n` of `series` (a series key as [`Self::check`] gives
    /// it): the series' parts, and the sequence zero-padded to the width its expression
    /// fixes. Fails if that number would not follow the rule (a series full, a key that
    /// is no series).
    pub fn numbered(&self, series: &str, n: u64) -> Result<String, String> {
        let sequence = self.sequence_part()?;
        let values: Vec<&str> = if self.series.is_empty() {
            Vec::new()
        } else {
            series.split('-').collect()
        };
        if values.len() != self.series.len() {
            return Err(format!(
                "'{series}' is not a series: it is {} joined by '-'",
                self.series.join(", ")
            ));
        }
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Part(p) if p == sequence => match self.widths.get(p) {
                    Some(w) => out.push_str(&format!("{n:0w$}", w = *w)),
                    None => out.push_str(&n.to_string()),
                },
                Piece::Part(p) => {
                    let i = self.series.iter().position(|s| s == p).unwrap_or(0);
                    out.push_str(values.get(i).copied().unwrap_or(""));
                }
            }
        }
        match self.check(&out) {
            Ok(key) if key == series || self.series.is_empty() => Ok(out),
            Ok(_) | Err(_) => Err(format!(
                "box {n} of series '{series}' would be '{out}', which does not follow {}: the series is full or no series",
                self.pattern
            )),
        }
    }
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn power_rule() -> ArchiveRule {
        ArchiveRule::new(
            "{company}-{category}-{cabinet}-{sequence}",
            &parts(&[
                ("company", "[0-9]{4}"),
                ("category", "H|L"),
                ("cabinet", "[0-9]{3}"),
                ("sequence", "[0-9]{5}"),
            ]),
            &["category".into(), "cabinet".into()],
        )
        .unwrap()
    }

    #[test]
    fn a_number_typed_without_dashes_or_in_lower_case_is_read_as_the_rule_writes_it() {
        let rule = power_rule();
        for typed in [
            "0451h00100001",
            "0451H00100001",
            "0451 H 001 00001",
            "0451.h.001.00001",
            "0451-h-001-00001",
        ] {
            assert_eq!(
                rule.normalise(typed).as_deref(),
                Some("0451-H-001-00001"),
                "{typed}"
            );
        }
        assert_eq!(rule.normalise("0451-H-001-00001"), None, "already right");
        assert_eq!(rule.normalise("0451X00100001"), None, "no category X");
        assert_eq!(rule.normalise("045100100001"), None, "a part missing");
        assert_eq!(rule.normalise("合同"), None);
    }

    #[test]
    fn the_next_number_of_a_series_follows_the_rule() {
        let rule = ArchiveRule::new(
            "{company}-{category}-{cabinet}-{sequence}",
            &parts(&[
                ("company", "[0-9]{4}"),
                ("category", "H|L"),
                ("cabinet", "[0-9]{3}"),
                ("sequence", "[0-9]{5}"),
            ]),
            &["company".into(), "category".into(), "cabinet".into()],
        )
        .unwrap();
        assert_eq!(rule.sequence_part(), Ok("sequence"));
        assert_eq!(rule.numbered("0451-H-012", 42).unwrap(), "0451-H-012-00042");
        assert_eq!(rule.sequence_of("0451-H-012-00042"), Some(42));
        assert!(
            rule.numbered("0451-H-012", 100_000).is_err(),
            "the series is full"
        );
        assert!(rule.numbered("0451-X-012", 1).is_err());
        assert!(rule.numbered("0451-H", 1).is_err());
        assert!(
            power_rule().sequence_part().is_err(),
            "company and sequence are both outside"
        );
    }

    #[test]
    fn conforming_numbers_give_their_series() {
        let rule = power_rule();
        assert_eq!(rule.check("0451-H-012-00042").unwrap(), "H-012");
        assert_eq!(rule.check("0451-L-003-99999").unwrap(), "L-003");
    }

    #[test]
    fn alternatives_do_not_leak_out_of_their_part() {
        // "H|L" must be grouped: "0451-H" alone must not match through the alternation.
        let rule = power_rule();
        for bad in [
            "0451-H",
            "0451-X-012-00042",
            "451-H-012-00042",
            "0451-H-012-00042x",
            "0451-H-012-000421",
            "",
        ] {
            assert!(rule.check(bad).is_err(), "{bad} passed");
        }
    }

    #[test]
    fn literal_text_is_literal() {
        let rule = ArchiveRule::new("A.{n}", &parts(&[("n", "[0-9]+")]), &[]).unwrap();
        assert!(rule.check("A.12").is_ok());
        assert!(rule.check("AX12").is_err());
    }

    #[test]
    fn bad_rules_are_explained() {
        let p = parts(&[("a", "[0-9]+")]);
        let err = |pattern: &str, parts: &BTreeMap<String, String>, series: &[&str]| {
            let series: Vec<String> = series.iter().map(|s| s.to_string()).collect();
            ArchiveRule::new(pattern, parts, &series)
                .unwrap_err()
                .to_string()
        };
        assert!(err("{b}", &p, &[]).contains("does not define"));
        assert!(err("{a", &p, &[]).contains("without"));
        assert!(err("{a}-{a}", &p, &[]).contains("twice"));
        assert!(err("{a}", &p, &["z"]).contains("series part 'z'"));
        assert!(err("x", &p, &[]).contains("does not use it"));
        assert!(err("{a}", &parts(&[("a", "[0-9")]), &[]).contains("not a valid"));
    }
}
