//! How the site keeps a box's record: its typed descriptive fields (`[boxes.fields.KEY]`)
//! and its retention classes (`[retention]`, 保管期限表). Checked here, used by
//! `location` (fields) and `retention`.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::archive_no::ArchiveRule;
use crate::name::Name;

/// What a field holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    #[default]
    Text,
    /// `YYYY-MM-DD`.
    Date,
    Number,
    /// One of `choices`.
    Choice,
}

/// How the search box finds a box by a field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SearchBy {
    /// It does not: the field is found by `field=KEY&value=…` only.
    #[default]
    None,
    /// By its whole value (a customer number): one lookup in the fields' index.
    Exact,
    /// By its whole value and by its words, in the title index (a customer's name). Each
    /// distinct word costs the title index and its prefix indexes a term: an identifier
    /// searched by words makes a term of every box.
    Words,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawField {
    #[serde(default)]
    name: String,
    #[serde(rename = "type", default)]
    kind: FieldKind,
    #[serde(default)]
    choices: Vec<String>,
    #[serde(default)]
    search: SearchBy,
}

/// A field the site declared.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FieldDef {
    pub key: String,
    /// What staff call it (the key if the config gives no name).
    pub name: String,
    pub kind: FieldKind,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// How the search box finds the box by it.
    pub search: SearchBy,
}

/// A field's value as stored for lookups by value and by range.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Text(String),
    Number(f64),
}

impl FieldDef {
    /// Checks a value given for this field; `None` for null (the field is cleared).
    pub fn check(&self, value: &serde_json::Value) -> Result<Option<FieldValue>, String> {
        use serde_json::Value;
        match (self.kind, value) {
            (_, Value::Null) => Ok(None),
            (_, Value::String(s)) if s.trim().is_empty() => Ok(None),
            (FieldKind::Number, Value::Number(n)) => n
                .as_f64()
                .map(|n| Some(FieldValue::Number(n)))
                .ok_or_else(|| "is not a number".to_string()),
            (FieldKind::Number, Value::String(s)) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(|n| Some(FieldValue::Number(n)))
                .ok_or_else(|| format!("'{s}' is not a number")),
            (FieldKind::Date, Value::String(s)) => parse_date(s)
                .map(|d| Some(FieldValue::Text(d.to_string())))
                .ok_or_else(|| format!("'{s}' is not a date: write YYYY-MM-DD")),
            (FieldKind::Choice, Value::String(s)) => {
                let s = s.trim();
                if self.choices.iter().any(|c| c == s) {
                    Ok(Some(FieldValue::Text(s.to_string())))
                } else {
                    Err(format!("'{s}' is not one of {}", self.choices.join(", ")))
                }
            }
            (FieldKind::Text, Value::String(s)) => {
                let s = s.trim();
                if s.chars().count() > 500 || s.chars().any(char::is_control) {
                    return Err("must be at most 500 characters, without control characters".into());
                }
                Ok((!s.is_empty()).then(|| FieldValue::Text(s.to_string())))
            }
            (FieldKind::Text, Value::Number(n)) => Ok(Some(FieldValue::Text(n.to_string()))),
            (kind, _) => Err(format!("must be {}", kind_words(kind))),
        }
    }
}

fn kind_words(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Text => "text",
        FieldKind::Date => "a date (YYYY-MM-DD)",
        FieldKind::Number => "a number",
        FieldKind::Choice => "one of its choices",
    }
}

impl FieldValue {
    /// As the record's JSON holds it.
    pub fn json(&self) -> serde_json::Value {
        match self {
            FieldValue::Text(t) => serde_json::Value::String(t.clone()),
            FieldValue::Number(n) => serde_json::Number::from_f64(*n)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
        }
    }
}

impl rusqlite::ToSql for FieldValue {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            FieldValue::Text(t) => t.to_sql(),
            FieldValue::Number(n) => n.to_sql(),
        }
    }
}

/// A date as people type it in the register: `2019-03-07` (also `2019/3/7`).
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(text, "%Y/%m/%d"))
        .ok()
}

/// The declared fields, by key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(pub BTreeMap<String, FieldDef>);

impl Fields {
    pub fn get(&self, key: &str) -> Option<&FieldDef> {
        self.0.get(key)
    }

    /// The fields whose whole value finds a box.
    pub fn searched(&self) -> impl Iterator<Item = &FieldDef> {
        self.0.values().filter(|f| f.search != SearchBy::None)
    }
}

fn is_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 40
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Fields a box has of its own, not descriptive fields.
const RESERVED: [&str; 8] = [
    "archive_no",
    "epc",
    "barcode",
    "title",
    "shelf",
    "width_mm",
    "reason",
    "retention",
];

pub(super) fn fields(raw: BTreeMap<String, RawField>) -> Result<Fields, (String, String)> {
    let mut out = BTreeMap::new();
    for (key, f) in raw {
        let at = |k: &str| format!("boxes.fields.{key}{k}");
        if !is_key(&key) || RESERVED.contains(&key.as_str()) {
            return Err((
                at(""),
                format!(
                    "a field's key is lower-case letters, digits and '_', and none of {}",
                    RESERVED.join(", ")
                ),
            ));
        }
        match (f.kind, f.choices.is_empty()) {
            (FieldKind::Choice, true) => {
                return Err((at(".choices"), "a choice field lists its choices".into()));
            }
            (FieldKind::Choice, false) => {}
            (_, false) => {
                return Err((
                    at(".choices"),
                    "only a field of type \"choice\" has choices".into(),
                ));
            }
            (_, true) => {}
        }
        if f.search != SearchBy::None && f.kind != FieldKind::Text {
            return Err((
                at(".search"),
                "only text fields are searched from the search box; dates and numbers are found by range".into(),
            ));
        }
        let name = if f.name.trim().is_empty() {
            key.clone()
        } else {
            f.name.trim().to_string()
        };
        out.insert(
            key.clone(),
            FieldDef {
                key,
                name,
                kind: f.kind,
                choices: f.choices,
                search: f.search,
            },
        );
    }
    Ok(Fields(out))
}

// ---------------------------------------------------------------------------------------
// Retention.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    /// The class of a box that names none and matches no rule.
    default: Option<String>,
    #[serde(default)]
    classes: BTreeMap<String, RawClass>,
    /// A part of the archive number chooses the class: `{ category = { H = "permanent" } }`.
    #[serde(default)]
    by_part: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClass {
    #[serde(default)]
    name: String,
    /// Years kept; absent: kept permanently.
    years: Option<u32>,
    /// A date field the period runs from (e.g. the account's closing, 销户); absent: from
    /// the box's registration.
    from: Option<String>,
}

/// A retention class (保管期限).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RetentionClass {
    pub id: String,
    pub name: String,
    /// Years kept; null: permanent.
    pub years: Option<u32>,
    /// The date field the period runs from; null: the box's registration.
    pub from: Option<String>,
}

/// The retention schedule.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Retention {
    pub classes: BTreeMap<String, RetentionClass>,
    pub default: Option<String>,
    /// (a part of the archive number's pattern, its value → class id)
    pub by_part: Vec<(String, BTreeMap<String, String>)>,
}

impl Retention {
    /// The class of a box: the one it names, else the rule of its number's parts, else the
    /// default.
    pub fn class_of(
        &self,
        named: Option<&str>,
        parts: &dyn Fn(&str) -> Option<String>,
    ) -> Option<&RetentionClass> {
        if let Some(id) = named {
            return self.classes.get(id);
        }
        for (part, map) in &self.by_part {
            if let Some(class) = parts(part).and_then(|v| map.get(&v)) {
                return self.classes.get(class);
            }
        }
        self.default.as_ref().and_then(|id| self.classes.get(id))
    }
}

pub(super) fn retention(
    raw: RawRetention,
    fields: &Fields,
    rule: &ArchiveRule,
) -> Result<Retention, (String, String)> {
    let mut classes = BTreeMap::new();
    for (id, c) in raw.classes {
        let at = |k: &str| format!("retention.classes.{id}{k}");
        if !is_key(&id.to_ascii_lowercase()) {
            return Err((at(""), "a class id is letters, digits and '_'".into()));
        }
        if c.years == Some(0) || c.years.is_some_and(|y| y > 200) {
            return Err((
                at(".years"),
                "must be 1 to 200 (leave it out: permanent)".into(),
            ));
        }
        if let Some(from) = &c.from {
            match fields.get(from) {
                Some(f) if f.kind == FieldKind::Date => {}
                _ => {
                    return Err((
                        at(".from"),
                        format!("'{from}' is not a date field of [boxes.fields]"),
                    ));
                }
            }
        }
        let name = if c.name.trim().is_empty() {
            id.clone()
        } else {
            c.name.trim().to_string()
        };
        classes.insert(
            id.clone(),
            RetentionClass {
                id,
                name,
                years: c.years,
                from: c.from,
            },
        );
    }
    if let Some(d) = &raw.default
        && !classes.contains_key(d)
    {
        return Err(("retention.default".into(), format!("no class '{d}'")));
    }
    let mut by_part = Vec::new();
    for (part, map) in raw.by_part {
        if !rule.parts().any(|p| p == part) {
            return Err((
                format!("retention.by_part.{part}"),
                format!("the archive number has no part '{part}'"),
            ));
        }
        if let Some((value, class)) = map.iter().find(|(_, c)| !classes.contains_key(*c)) {
            return Err((
                format!("retention.by_part.{part}.{value}"),
                format!("no class '{class}'"),
            ));
        }
        by_part.push((part, map));
    }
    Ok(Retention {
        classes,
        default: raw.default,
        by_part,
    })
}

// ---------------------------------------------------------------------------------------
// Places off the shelving.

/// What a place is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlaceKind {
    /// A safe (保险柜), for deeds and originals.
    Safe,
    ReadingRoom,
    /// Where damaged boxes are mended (修复室); a loan's damaged box is sent there.
    Repair,
    Other,
}

/// A place a box can be in besides its shelf (`[[places]]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Place {
    pub id: String,
    pub kind: PlaceKind,
    /// What staff call it, e.g. 保险柜 1 (or `{ zh = "保险柜 1", en = "Safe 1" }`).
    pub name: Name,
}

pub(super) fn places(raw: Vec<Place>) -> Result<Vec<Place>, (String, String)> {
    let mut seen = std::collections::HashSet::new();
    for (i, p) in raw.iter().enumerate() {
        let ok = !p.id.is_empty()
            && p.id.len() <= 40
            && p.id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err((
                format!("places[{i}].id"),
                "letters, digits, '-' and '_', at most 40".into(),
            ));
        }
        if !seen.insert(p.id.clone()) {
            return Err((
                format!("places[{i}].id"),
                format!("'{}' is named twice", p.id),
            ));
        }
        if p.name.is_empty() || p.name.half_given() {
            return Err((
                format!("places[{i}].name"),
                "a place has a name (in both languages where two are given)".into(),
            ));
        }
    }
    Ok(raw)
}
