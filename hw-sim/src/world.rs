//! The simulated truth: which tag is physically on which shelf.
//!
//! Shelves are named by the controller's canonical address text (the simulator does not
//! parse addresses; it matches them). The truth may differ from what the controller
//! believes: a box taken away, a box put back on the wrong shelf, a stray tag.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

/// One shelf: its address and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShelfSpec {
    pub address: String,
    pub range: u16,
    pub carriage: u16,
    pub right_face: bool,
    pub section: u16,
    pub level: u16,
}

/// Where a tag is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tag {
    pub epc: String,
    /// The box it is stuck on; `None` for a stray tag.
    pub archive_no: Option<String>,
    /// `None`: out of the room.
    pub shelf: Option<String>,
    /// The XPC words the tag sends after its PC (Gen2 6.3.2.1.2.2), if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xpc: Vec<u16>,
}

/// The bytes of an EPC in hex (as the world keeps them: checked, upper case).
pub fn epc_bytes(epc: &str) -> Vec<u8> {
    (0..epc.len() / 2)
        .filter_map(|i| u8::from_str_radix(epc.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// Why a change to the world cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorldError {
    #[error("the room has no shelf '{0}' (use the canonical address, e.g. R1-C2-L-S3-L4)")]
    NoShelf(String),
    #[error("no box '{0}' in the simulated room")]
    NoBox(String),
    #[error("tag {0} is already in the room")]
    TagExists(String),
    #[error("'{0}' is not an EPC: hex digits, whole 16-bit words")]
    BadEpc(String),
    #[error("no tag {0} in the simulated room")]
    NoTag(String),
    #[error("XPC words: none, [W1] with its top bit clear, or [W1, W2] with W1's top bit set")]
    BadXpc,
}

/// The simulated room's contents.
#[derive(Debug, Clone)]
pub struct World {
    shelves: Vec<ShelfSpec>,
    by_address: HashMap<String, usize>,
    /// Tags on each shelf, by shelf index.
    on_shelf: Vec<Vec<String>>,
    tags: BTreeMap<String, (Option<String>, Option<usize>)>,
    boxes: HashMap<String, String>,
    neighbours: Vec<Vec<usize>>,
    xpc: HashMap<String, Vec<u16>>,
}

impl World {
    /// An empty room of these shelves.
    pub fn new(shelves: Vec<ShelfSpec>) -> World {
        let by_address: HashMap<String, usize> = shelves
            .iter()
            .enumerate()
            .map(|(i, s)| (s.address.clone(), i))
            .collect();
        let key = |s: &ShelfSpec| (s.range, s.carriage, s.right_face, s.section, s.level);
        let by_place: HashMap<_, usize> = shelves
            .iter()
            .enumerate()
            .map(|(i, s)| (key(s), i))
            .collect();
        let neighbours = shelves
            .iter()
            .map(|s| {
                let (r, c, f, sec, lvl) = key(s);
                [
                    (sec, lvl.wrapping_sub(1)),
                    (sec, lvl + 1),
                    (sec.wrapping_sub(1), lvl),
                    (sec + 1, lvl),
                ]
                .into_iter()
                .filter_map(|(sec, lvl)| by_place.get(&(r, c, f, sec, lvl)).copied())
                .collect()
            })
            .collect();
        World {
            on_shelf: vec![Vec::new(); shelves.len()],
            shelves,
            by_address,
            tags: BTreeMap::new(),
            boxes: HashMap::new(),
            neighbours,
            xpc: HashMap::new(),
        }
    }

    pub fn shelves(&self) -> &[ShelfSpec] {
        &self.shelves
    }

    pub fn shelf_index(&self, address: &str) -> Result<usize, WorldError> {
        self.by_address
            .get(address)
            .copied()
            .ok_or_else(|| WorldError::NoShelf(address.to_string()))
    }

    /// Shelves next to shelf `i` on the same face: the levels above and below, the
    /// sections left and right. Their antennas hear its tags now and then.
    pub fn neighbours(&self, i: usize) -> &[usize] {
        &self.neighbours[i]
    }

    /// EPCs on shelf `i`.
    pub fn tags_on(&self, i: usize) -> &[String] {
        &self.on_shelf[i]
    }

    fn check_epc(epc: &str) -> Result<String, WorldError> {
        let ok = epc.len() >= 4
            && epc.len() <= 124
            && epc.len().is_multiple_of(4)
            && epc.bytes().all(|b| b.is_ascii_hexdigit());
        if ok {
            Ok(epc.to_ascii_uppercase())
        } else {
            Err(WorldError::BadEpc(epc.to_string()))
        }
    }

    fn put(&mut self, epc: &str, shelf: Option<usize>) {
        if let Some((_, Some(old))) = self.tags.get(epc) {
            let old = *old;
            self.on_shelf[old].retain(|e| e != epc);
        }
        if let Some(i) = shelf {
            self.on_shelf[i].push(epc.to_string());
        }
        if let Some(entry) = self.tags.get_mut(epc) {
            entry.1 = shelf;
        }
    }

    /// Puts a box with its tag on a shelf (or in the room but off the shelves: `None`).
    pub fn place_box(
        &mut self,
        archive_no: &str,
        epc: &str,
        shelf: Option<&str>,
    ) -> Result<(), WorldError> {
        let epc = Self::check_epc(epc)?;
        let shelf = shelf.map(|s| self.shelf_index(s)).transpose()?;
        if self
            .tags
            .get(&epc)
            .is_some_and(|(owner, _)| owner.as_deref() != Some(archive_no))
        {
            return Err(WorldError::TagExists(epc));
        }
        if let Some(old) = self.boxes.insert(archive_no.to_string(), epc.clone())
            && old != epc
        {
            self.put(&old, None);
            self.tags.remove(&old);
        }
        self.tags
            .entry(epc.clone())
            .or_insert((Some(archive_no.to_string()), None));
        self.put(&epc, shelf);
        Ok(())
    }

    /// Moves a box to another shelf.
    pub fn move_box(&mut self, archive_no: &str, shelf: &str) -> Result<(), WorldError> {
        let shelf = self.shelf_index(shelf)?;
        let epc = self
            .boxes
            .get(archive_no)
            .cloned()
            .ok_or_else(|| WorldError::NoBox(archive_no.to_string()))?;
        self.put(&epc, Some(shelf));
        Ok(())
    }

    /// Takes a box out of the room.
    pub fn remove_box(&mut self, archive_no: &str) -> Result<(), WorldError> {
        let epc = self
            .boxes
            .remove(archive_no)
            .ok_or_else(|| WorldError::NoBox(archive_no.to_string()))?;
        self.put(&epc, None);
        self.tags.remove(&epc);
        Ok(())
    }

    /// Puts a stray tag (no box's) on a shelf.
    pub fn add_stray(&mut self, epc: &str, shelf: &str) -> Result<(), WorldError> {
        let epc = Self::check_epc(epc)?;
        let shelf = self.shelf_index(shelf)?;
        if self.tags.contains_key(&epc) {
            return Err(WorldError::TagExists(epc));
        }
        self.tags.insert(epc.clone(), (None, None));
        self.put(&epc, Some(shelf));
        Ok(())
    }

    /// Gives a tag XPC words (or takes them away).
    pub fn set_xpc(&mut self, epc: &str, words: Vec<u16>) -> Result<(), WorldError> {
        let epc = Self::check_epc(epc)?;
        if !self.tags.contains_key(&epc) {
            return Err(WorldError::NoTag(epc));
        }
        let ok = match words.as_slice() {
            [] => true,
            [w1] => w1 & 0x8000 == 0,
            [w1, _] => w1 & 0x8000 != 0,
            _ => false,
        };
        if !ok {
            return Err(WorldError::BadXpc);
        }
        if words.is_empty() {
            self.xpc.remove(&epc);
        } else {
            self.xpc.insert(epc, words);
        }
        Ok(())
    }

    /// The XPC words of a tag (none for most).
    pub fn xpc(&self, epc: &str) -> &[u16] {
        self.xpc.get(epc).map_or(&[], Vec::as_slice)
    }

    /// Every tag with its place, in EPC order.
    pub fn snapshot(&self) -> Vec<Tag> {
        self.tags
            .iter()
            .map(|(epc, (archive_no, shelf))| Tag {
                epc: epc.clone(),
                archive_no: archive_no.clone(),
                shelf: shelf.map(|i| self.shelves[i].address.clone()),
                xpc: self.xpc(epc).to_vec(),
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One face of one carriage: 3 sections x 3 levels.
    pub fn shelves() -> Vec<ShelfSpec> {
        let mut out = Vec::new();
        for section in 1..=3 {
            for level in 1..=3 {
                out.push(ShelfSpec {
                    address: format!("R1-C1-R-S{section}-L{level}"),
                    range: 1,
                    carriage: 1,
                    right_face: true,
                    section,
                    level,
                });
            }
        }
        out
    }

    #[test]
    fn neighbours_are_on_the_same_face() {
        let w = World::new(shelves());
        let centre = w.shelf_index("R1-C1-R-S2-L2").unwrap();
        let mut n: Vec<&str> = w
            .neighbours(centre)
            .iter()
            .map(|&i| w.shelves()[i].address.as_str())
            .collect();
        n.sort();
        assert_eq!(
            n,
            [
                "R1-C1-R-S1-L2",
                "R1-C1-R-S2-L1",
                "R1-C1-R-S2-L3",
                "R1-C1-R-S3-L2"
            ]
        );
        assert_eq!(
            w.neighbours(w.shelf_index("R1-C1-R-S1-L1").unwrap()).len(),
            2
        );
    }

    #[test]
    fn boxes_move_and_leave() {
        let mut w = World::new(shelves());
        w.place_box("A-1", "e2801170000000000000000a", Some("R1-C1-R-S1-L1"))
            .unwrap();
        w.move_box("A-1", "R1-C1-R-S3-L3").unwrap();
        let at = |w: &World, s: &str| w.tags_on(w.shelf_index(s).unwrap()).to_vec();
        assert!(at(&w, "R1-C1-R-S1-L1").is_empty());
        assert_eq!(at(&w, "R1-C1-R-S3-L3"), ["E2801170000000000000000A"]);
        w.add_stray("ABCD", "R1-C1-R-S3-L3").unwrap();
        assert_eq!(
            w.add_stray("abcd", "R1-C1-R-S1-L1"),
            Err(WorldError::TagExists("ABCD".into()))
        );
        w.remove_box("A-1").unwrap();
        assert_eq!(at(&w, "R1-C1-R-S3-L3"), ["ABCD"]);
        assert_eq!(
            w.move_box("A-1", "R1-C1-R-S1-L1"),
            Err(WorldError::NoBox("A-1".into()))
        );
        assert!(matches!(
            w.move_box("A-1", "R9-C1-R-S1-L1"),
            Err(WorldError::NoShelf(_))
        ));
        assert_eq!(w.snapshot().len(), 1);
    }
}
