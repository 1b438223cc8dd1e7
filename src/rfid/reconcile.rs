//! Reconciling what a stocktake heard with what the bindings say, sans-IO.
//!
//! For every box bound to a shelf in the scope, and every tag heard:
//! - **present**: heard, and decided on its bound shelf;
//! - **misplaced**: heard, and decided on another shelf (which one, with the evidence);
//! - **missing**: bound to a shelf that was read, and not heard anywhere;
//! - **not read**: bound to a shelf whose antenna was not read (a reader was offline): no
//!   verdict, never "missing";
//! - **unknown**: a tag heard that belongs to no box.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::pipeline::{Decision, Evidence};
use crate::shelf::ShelfAddress;

/// A box as the bindings have it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    pub archive_no: String,
    pub epc: String,
    pub shelf: ShelfAddress,
}

/// What the stocktake found for one box or tag.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Finding {
    Present {
        archive_no: String,
        epc: String,
        shelf: ShelfAddress,
        confidence: f64,
    },
    Misplaced {
        archive_no: String,
        epc: String,
        bound: Option<ShelfAddress>,
        found: ShelfAddress,
        confidence: f64,
        evidence: Vec<(ShelfAddress, Evidence)>,
    },
    Missing {
        archive_no: String,
        epc: String,
        bound: ShelfAddress,
    },
    NotRead {
        archive_no: String,
        epc: String,
        bound: ShelfAddress,
    },
    Unknown {
        epc: String,
        found: ShelfAddress,
        confidence: f64,
    },
}

/// Counts of a stocktake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub present: usize,
    pub misplaced: usize,
    pub missing: usize,
    pub not_read: usize,
    pub unknown: usize,
}

/// Compares decisions with bindings.
///
/// `bound`: the boxes bound to shelves in the scope; `read_shelves`: the shelves whose
/// antennas were read; `decisions`: where each heard tag is; `known`: epc → archive number of
/// every registered box (heard boxes bound elsewhere, or to no shelf, are misplaced, not
/// unknown).
pub fn reconcile(
    bound: &[Bound],
    read_shelves: &HashSet<ShelfAddress>,
    decisions: &[Decision],
    known: &HashMap<String, String>,
) -> (Vec<Finding>, Summary) {
    let mut findings = Vec::new();
    let mut summary = Summary::default();
    let heard: HashMap<&str, &Decision> = decisions.iter().map(|d| (d.epc.as_str(), d)).collect();
    let in_scope: HashSet<&str> = bound.iter().map(|b| b.epc.as_str()).collect();
    for b in bound {
        match heard.get(b.epc.as_str()) {
            Some(d) if d.shelf == b.shelf => {
                summary.present += 1;
                findings.push(Finding::Present {
                    archive_no: b.archive_no.clone(),
                    epc: b.epc.clone(),
                    shelf: b.shelf,
                    confidence: d.confidence,
                });
            }
            Some(d) => {
                summary.misplaced += 1;
                findings.push(Finding::Misplaced {
                    archive_no: b.archive_no.clone(),
                    epc: b.epc.clone(),
                    bound: Some(b.shelf),
                    found: d.shelf,
                    confidence: d.confidence,
                    evidence: d.evidence.clone(),
                });
            }
            None if read_shelves.contains(&b.shelf) => {
                summary.missing += 1;
                findings.push(Finding::Missing {
                    archive_no: b.archive_no.clone(),
                    epc: b.epc.clone(),
                    bound: b.shelf,
                });
            }
            None => {
                summary.not_read += 1;
                findings.push(Finding::NotRead {
                    archive_no: b.archive_no.clone(),
                    epc: b.epc.clone(),
                    bound: b.shelf,
                });
            }
        }
    }
    for d in decisions
        .iter()
        .filter(|d| !in_scope.contains(d.epc.as_str()))
    {
        match known.get(&d.epc) {
            // A registered box heard here but bound elsewhere (or nowhere).
            Some(archive_no) => {
                summary.misplaced += 1;
                findings.push(Finding::Misplaced {
                    archive_no: archive_no.clone(),
                    epc: d.epc.clone(),
                    bound: None,
                    found: d.shelf,
                    confidence: d.confidence,
                    evidence: d.evidence.clone(),
                });
            }
            None => {
                summary.unknown += 1;
                findings.push(Finding::Unknown {
                    epc: d.epc.clone(),
                    found: d.shelf,
                    confidence: d.confidence,
                });
            }
        }
    }
    (findings, summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shelf::Face;

    fn shelf(level: u16) -> ShelfAddress {
        ShelfAddress {
            range: 1,
            carriage: 1,
            face: Face::Right,
            section: 1,
            level,
        }
    }

    fn decision(epc: &str, level: u16) -> Decision {
        Decision {
            epc: epc.into(),
            shelf: shelf(level),
            confidence: 0.9,
            evidence: vec![],
        }
    }

    fn boxed(no: &str, epc: &str, level: u16) -> Bound {
        Bound {
            archive_no: no.into(),
            epc: epc.into(),
            shelf: shelf(level),
        }
    }

    #[test]
    fn every_box_and_tag_gets_one_finding() {
        let bound = [
            boxed("A", "E1", 1),
            boxed("B", "E2", 1),
            boxed("C", "E3", 2),
            boxed("D", "E4", 3),
        ];
        let read: HashSet<ShelfAddress> = [shelf(1), shelf(2)].into();
        let decisions = [
            decision("E1", 1),
            decision("E2", 2),
            decision("E9", 1),
            decision("E7", 2),
        ];
        let known: HashMap<String, String> = [("E7".to_string(), "Z".to_string())].into();
        let (findings, summary) = reconcile(&bound, &read, &decisions, &known);
        assert_eq!(
            summary,
            Summary {
                present: 1,
                misplaced: 2,
                missing: 1,
                not_read: 1,
                unknown: 1
            }
        );
        assert!(matches!(&findings[0], Finding::Present { archive_no, .. } if archive_no == "A"));
        assert!(
            matches!(&findings[1], Finding::Misplaced { found, bound: Some(b), .. } if *found == shelf(2) && *b == shelf(1))
        );
        assert!(matches!(&findings[2], Finding::Missing { archive_no, .. } if archive_no == "C"));
        assert!(
            matches!(&findings[3], Finding::NotRead { archive_no, .. } if archive_no == "D"),
            "shelf 3 was not read: no verdict"
        );
        assert!(
            findings
                .iter()
                .any(|f| matches!(f, Finding::Unknown { epc, .. } if epc == "E9"))
        );
        assert!(findings.iter().any(
            |f| matches!(f, Finding::Misplaced { archive_no, bound: None, .. } if archive_no == "Z")
        ));
    }
}
