//! The room's physical layout: ranges of carriages, and the shelves on their faces.
//!
//! A face that looks into an aisle carries `sections × levels` shelves. The outer face of
//! a range's first and last carriage looks at the wall or end panel and carries none, so a
//! range of `n` carriages has `2n - 2` shelved faces and `n - 1` aisles.
//!
//! Shelves have a fill order (range, carriage, face, section, level); its index is the
//! shelf's *ordinal*, which shelf suggestion uses as its measure of "near".

use serde::Serialize;

use crate::name::Name;
use crate::shelf::{AisleRef, Face, ShelfAddress};

/// How much a shelf holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Capacity {
    /// A number of boxes.
    Boxes(u32),
    /// A length in millimetres, filled by the boxes' widths.
    Mm(u32),
}

/// One carriage (列) of a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carriage {
    pub index: u16,
    pub width_mm: u32,
    pub fixed: bool,
}

/// One range (区): a row of carriages on rails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeLayout {
    pub id: u16,
    pub name: Name,
    pub carriages: Vec<Carriage>,
    pub aisle_width_mm: u32,
    pub sections: u16,
    pub levels: u16,
    pub capacity: Capacity,
}

impl RangeLayout {
    pub fn carriage_count(&self) -> u16 {
        self.carriages.len() as u16
    }

    /// The faces of carriage `c` that carry shelves.
    fn shelved_faces(&self, carriage: u16) -> impl Iterator<Item = Face> + use<> {
        let n = self.carriage_count();
        let left = carriage > 1;
        let right = carriage < n;
        [(left, Face::Left), (right, Face::Right)]
            .into_iter()
            .filter_map(|(has, face)| has.then_some(face))
    }

    /// Every shelf of the range, in fill order.
    pub fn shelves(&self) -> impl Iterator<Item = ShelfAddress> + '_ {
        let range = self.id;
        (1..=self.carriage_count()).flat_map(move |carriage| {
            self.shelved_faces(carriage).flat_map(move |face| {
                (1..=self.sections).flat_map(move |section| {
                    (1..=self.levels).map(move |level| ShelfAddress {
                        range,
                        carriage,
                        face,
                        section,
                        level,
                    })
                })
            })
        })
    }

    pub fn shelf_count(&self) -> usize {
        (2 * self.carriages.len() - 2) * self.sections as usize * self.levels as usize
    }

    pub fn contains(&self, shelf: &ShelfAddress) -> bool {
        shelf.range == self.id
            && shelf.carriage >= 1
            && shelf.carriage <= self.carriage_count()
            && shelf.section >= 1
            && shelf.section <= self.sections
            && shelf.level >= 1
            && shelf.level <= self.levels
            && shelf.aisle(self.carriage_count()).is_some()
    }

    pub fn aisle_count(&self) -> u16 {
        self.carriage_count() - 1
    }
}

/// Why a shelf address names no shelf of this room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoSuchShelf {
    #[error("the room has no range {0}")]
    Range(u16),
    #[error("shelf {0} is not in the room: {1}")]
    Outside(ShelfAddress, String),
}

/// All ranges of one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub ranges: Vec<RangeLayout>,
}

impl Layout {
    pub fn range(&self, id: u16) -> Option<&RangeLayout> {
        self.ranges.iter().find(|r| r.id == id)
    }

    /// Every shelf of the room, in fill order.
    pub fn shelves(&self) -> impl Iterator<Item = ShelfAddress> + '_ {
        self.ranges.iter().flat_map(|r| r.shelves())
    }

    pub fn shelf_count(&self) -> usize {
        self.ranges.iter().map(|r| r.shelf_count()).sum()
    }

    /// Checks that `shelf` is a shelf of this room and says why not otherwise.
    pub fn check(&self, shelf: &ShelfAddress) -> Result<&RangeLayout, NoSuchShelf> {
        let range = self
            .range(shelf.range)
            .ok_or(NoSuchShelf::Range(shelf.range))?;
        if range.contains(shelf) {
            return Ok(range);
        }
        let n = range.carriage_count();
        let why = if shelf.carriage > n {
            format!("range {} has carriages 1 to {n}", range.id)
        } else if shelf.section > range.sections {
            format!("range {} has sections 1 to {}", range.id, range.sections)
        } else if shelf.level > range.levels {
            format!("range {} has levels 1 to {}", range.id, range.levels)
        } else {
            format!(
                "the {} face of carriage {} looks at the wall and carries no shelves",
                shelf.face.as_str(),
                shelf.carriage
            )
        };
        Err(NoSuchShelf::Outside(*shelf, why))
    }

    /// The aisle through which `shelf` is reached.
    pub fn aisle_of(&self, shelf: &ShelfAddress) -> Option<AisleRef> {
        let range = self.range(shelf.range)?;
        shelf.aisle(range.carriage_count())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn range(id: u16, carriages: u16, sections: u16, levels: u16) -> RangeLayout {
        RangeLayout {
            id,
            name: format!("{id}").into(),
            carriages: (1..=carriages)
                .map(|index| Carriage {
                    index,
                    width_mm: 600,
                    fixed: index == 1 || index == carriages,
                })
                .collect(),
            aisle_width_mm: 900,
            sections,
            levels,
            capacity: Capacity::Boxes(10),
        }
    }

    #[test]
    fn shelves_are_counted_and_enumerated_alike() {
        let layout = Layout {
            ranges: vec![range(1, 10, 4, 6), range(2, 3, 2, 2)],
        };
        assert_eq!(layout.shelf_count(), 18 * 24 + 4 * 4);
        assert_eq!(layout.shelves().count(), layout.shelf_count());
        let mut sorted: Vec<_> = layout.shelves().collect();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), layout.shelf_count(), "no shelf twice");
        assert!(layout.shelves().all(|s| layout.check(&s).is_ok()));
        assert!(layout.shelves().all(|s| layout.aisle_of(&s).is_some()));
    }

    #[test]
    fn shelves_outside_the_room_are_explained() {
        let layout = Layout {
            ranges: vec![range(1, 10, 4, 6)],
        };
        let why = |text: &str| {
            layout
                .check(&text.parse().unwrap())
                .unwrap_err()
                .to_string()
        };
        assert!(why("R3-C1-R-S1-L1").contains("no range 3"));
        assert!(why("R1-C11-L-S1-L1").contains("carriages 1 to 10"));
        assert!(why("R1-C2-L-S5-L1").contains("sections 1 to 4"));
        assert!(why("R1-C2-L-S1-L7").contains("levels 1 to 6"));
        assert!(why("R1-C1-L-S1-L1").contains("looks at the wall"));
    }
}
