//! The words of a sweep that the room config and the API share: what it reads, what it
//! does with what it finds, and what a scheduled one does when another is running.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::layout::Layout;
use crate::shelf::ShelfAddress;

/// What a sweep reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Scope {
    /// Every shelf of a range.
    Range(u16),
    /// Every shelf of the room (`true`).
    Room(bool),
    /// These shelves, by address.
    Shelves(Vec<String>),
}

impl Scope {
    /// The shelves of the scope, checked against the layout.
    pub fn shelves(&self, layout: &Layout) -> Result<Vec<ShelfAddress>, String> {
        match self {
            Scope::Range(r) => layout
                .range(*r)
                .map(|range| range.shelves().collect())
                .ok_or_else(|| format!("the room has no range {r}")),
            Scope::Room(true) => Ok(layout.shelves().collect()),
            Scope::Room(false) => {
                Err("{\"room\": false} is no scope: ask for {\"room\": true}, {\"range\": R} or {\"shelves\": [...]}".into())
            }
            Scope::Shelves(list) if list.is_empty() => Err("lists no shelves".into()),
            Scope::Shelves(list) => {
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                for text in list {
                    let shelf: ShelfAddress = text
                        .parse()
                        .map_err(|e: crate::shelf::AddressError| format!("'{text}': {e}"))?;
                    layout.check(&shelf).map_err(|e| format!("'{text}': {e}"))?;
                    if seen.insert(shelf) {
                        out.push(shelf);
                    }
                }
                Ok(out)
            }
        }
    }
}

/// What a sweep does with what it finds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Apply {
    /// Report only; the bindings stay as they are.
    #[default]
    Report,
    /// Also re-bind misplaced boxes found with enough confidence.
    Sync,
}

impl Apply {
    pub fn as_str(self) -> &'static str {
        match self {
            Apply::Report => "report",
            Apply::Sync => "sync",
        }
    }
}

/// What a scheduled sweep does when another sweep is running at its time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Record the run as skipped.
    #[default]
    Skip,
    /// Start as soon as the running sweep ends.
    Wait,
}
