//! Reconciling what a stocktake heard with what the bindings say, sans-IO.
//!
//! For every box bound to a shelf in the scope, and every tag heard:
//! - **present**: heard, and decided on its bound shelf;
//! - **misplaced**: heard, and decided on another shelf (which one, with the evidence);
//! - **missing**: bound to a shelf that was read, and not heard anywhere;
//! - **not read**: bound to a shelf in the scope whose antenna was not read (a reader was
//!   offline): no verdict, never "missing". If the tag was heard on a shelf adjacent to its
//!   own, that is most likely a cross-read through the shelf board, so it is shown
//!   (`heard_on`) but is no verdict either; heard on a shelf that is not adjacent, the box
//!   has moved: misplaced. A box bound outside the scope and heard only next to its shelf
//!   (across the scope's edge) gets no finding at all;
//! - **unknown**: a tag heard that belongs to no box;
//! - **on loan**: a box out on a loan and not heard: not missing;
//! - **returned without check-in**: a box out on a loan, heard all the same (where).
//!   Boxes on loan get one of these two, whatever else would hold.

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
        /// Where it was heard all the same (a neighbour's antenna), and how surely.
        heard_on: Option<ShelfAddress>,
        confidence: Option<f64>,
    },
    Unknown {
        epc: String,
        found: ShelfAddress,
        confidence: f64,
    },
    OnLoan {
        archive_no: String,
        epc: String,
        /// Its home shelf.
        bound: Option<ShelfAddress>,
    },
    ReturnedWithoutCheckIn {
        archive_no: String,
        epc: String,
        bound: Option<ShelfAddress>,
        found: ShelfAddress,
        confidence: f64,
    },
}

/// Counts of a stocktake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub present: usize,
    pub misplaced: usize,
    pub missing: usize,
    pub not_read: usize,
    pub unknown: usize,
    pub on_loan: usize,
    pub returned_without_check_in: usize,
}

/// Compares decisions with bindings.
///
/// `bound`: the boxes bound to shelves in the scope; `read_shelves`: the shelves whose
/// antennas were read; `decisions`: where each heard tag is; `known`: epc → archive number
/// and shelf of every registered box (heard boxes bound outside the scope, or to no shelf,
/// are not unknown); `on_loan`: the EPCs of boxes out on a loan.
pub fn reconcile(
    bound: &[Bound],
    read_shelves: &HashSet<ShelfAddress>,
    decisions: &[Decision],
    known: &HashMap<String, (String, Option<ShelfAddress>)>,
    on_loan: &HashSet<String>,
) -> (Vec<Finding>, Summary) {
    let mut findings = Vec::new();
    let mut summary = Summary::default();
    let heard: HashMap<&str, &Decision> = decisions.iter().map(|d| (d.epc.as_str(), d)).collect();
    let in_scope: HashSet<&str> = bound.iter().map(|b| b.epc.as_str()).collect();
    for b in bound {
        let heard = heard.get(b.epc.as_str());
        let own_unread = !read_shelves.contains(&b.shelf);
        if on_loan.contains(&b.epc) {
            match heard {
                Some(d) => {
                    summary.returned_without_check_in += 1;
                    findings.push(Finding::ReturnedWithoutCheckIn {
                        archive_no: b.archive_no.clone(),
                        epc: b.epc.clone(),
                        bound: Some(b.shelf),
                        found: d.shelf,
                        confidence: d.confidence,
                    });
                }
                None => {
                    summary.on_loan += 1;
                    findings.push(Finding::OnLoan {
                        archive_no: b.archive_no.clone(),
                        epc: b.epc.clone(),
                        bound: Some(b.shelf),
                    });
                }
            }
            continue;
        }
        match heard {
            Some(d) if own_unread && d.shelf.adjacent(&b.shelf) => {
                summary.not_read += 1;
                findings.push(Finding::NotRead {
                    archive_no: b.archive_no.clone(),
                    epc: b.epc.clone(),
                    bound: b.shelf,
                    heard_on: Some(d.shelf),
                    confidence: Some(d.confidence),
                });
            }
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
                    heard_on: None,
                    confidence: None,
                });
            }
        }
    }
    for d in decisions
        .iter()
        .filter(|d| !in_scope.contains(d.epc.as_str()))
    {
        match known.get(&d.epc) {
            // Bound outside the scope, heard next to its shelf: a cross-read through the
            // scope's edge, most likely; the box is not this sweep's business.
            Some((_, Some(shelf))) if !read_shelves.contains(shelf) && d.shelf.adjacent(shelf) => {}
            // A box out on loan, heard here: back in the room, never checked in.
            Some((archive_no, shelf)) if on_loan.contains(&d.epc) => {
                summary.returned_without_check_in += 1;
                findings.push(Finding::ReturnedWithoutCheckIn {
                    archive_no: archive_no.clone(),
                    epc: d.epc.clone(),
                    bound: *shelf,
                    found: d.shelf,
                    confidence: d.confidence,
                });
            }
            // A registered box heard here but bound elsewhere (or nowhere).
            Some((archive_no, shelf)) => {
                summary.misplaced += 1;
                findings.push(Finding::Misplaced {
                    archive_no: archive_no.clone(),
                    epc: d.epc.clone(),
                    bound: *shelf,
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
        let known: HashMap<String, (String, Option<ShelfAddress>)> =
            [("E7".to_string(), ("Z".to_string(), None))].into();
        let (findings, summary) = reconcile(&bound, &read, &decisions, &known, &HashSet::new());
        assert_eq!(
            summary,
            Summary {
                present: 1,
                misplaced: 2,
                missing: 1,
                not_read: 1,
                unknown: 1,
                ..Summary::default()
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
        // The same room with A, C and E7's box out on loan.
        let on_loan: HashSet<String> = ["E1", "E3", "E7"].iter().map(|s| s.to_string()).collect();
        let (lent, lent_summary) = reconcile(&bound, &read, &decisions, &known, &on_loan);
        assert_eq!(
            (
                lent_summary.returned_without_check_in,
                lent_summary.on_loan,
                lent_summary.missing
            ),
            (2, 1, 0)
        );
        assert!(
            matches!(&lent[0], Finding::ReturnedWithoutCheckIn { archive_no, found, .. } if archive_no == "A" && *found == shelf(1))
        );
        assert!(
            matches!(&lent[2], Finding::OnLoan { archive_no, .. } if archive_no == "C"),
            "on loan, not missing"
        );
        assert!(lent.iter().any(
            |f| matches!(f, Finding::ReturnedWithoutCheckIn { archive_no, .. } if archive_no == "Z")
        ));
    }

    #[test]
    fn a_tag_heard_only_next_to_its_unread_shelf_gets_no_verdict() {
        // Shelf 3 was not read; its box E4 was heard on shelf 2 (adjacent), E5 on shelf 1
        // (two levels away: it has moved). E6 is bound outside the scope, to shelf 6, and
        // heard on shelf 5 (adjacent); E8, bound to shelf 6 too, on shelf 1.
        let bound = [boxed("D", "E4", 3), boxed("E", "E5", 3)];
        let read: HashSet<ShelfAddress> = [shelf(1), shelf(2), shelf(5)].into();
        let decisions = [
            decision("E4", 2),
            decision("E5", 1),
            decision("E6", 5),
            decision("E8", 1),
        ];
        let known: HashMap<String, (String, Option<ShelfAddress>)> = [
            ("E6".to_string(), ("F".to_string(), Some(shelf(6)))),
            ("E8".to_string(), ("G".to_string(), Some(shelf(6)))),
        ]
        .into();
        let (findings, summary) = reconcile(&bound, &read, &decisions, &known, &HashSet::new());
        assert_eq!(
            (summary.not_read, summary.misplaced),
            (1, 2),
            "{findings:?}"
        );
        assert_eq!(
            findings.len(),
            3,
            "F, outside the scope and heard next to it: nothing"
        );
        assert!(matches!(&findings[0],
            Finding::NotRead { archive_no, heard_on: Some(h), .. } if archive_no == "D" && *h == shelf(2)));
        assert!(matches!(&findings[1],
            Finding::Misplaced { archive_no, found, .. } if archive_no == "E" && *found == shelf(1)));
        assert!(findings.iter().any(|f| matches!(f,
            Finding::Misplaced { archive_no, bound: Some(b), .. } if archive_no == "G" && *b == shelf(6))));
    }

    #[test]
    fn adjacency_is_the_same_face_one_step_away_or_back_to_back() {
        let a: ShelfAddress = "R1-C2-L-S2-L3".parse().unwrap();
        for near in [
            "R1-C2-L-S2-L2",
            "R1-C2-L-S2-L4",
            "R1-C2-L-S1-L3",
            "R1-C2-R-S2-L3",
        ] {
            assert!(a.adjacent(&near.parse().unwrap()), "{near}");
        }
        for far in [
            "R1-C2-L-S2-L3",
            "R1-C2-L-S1-L2",
            "R1-C3-L-S2-L3",
            "R2-C2-L-S2-L3",
            "R1-C2-R-S2-L2",
        ] {
            assert!(!a.adjacent(&far.parse().unwrap()), "{far}");
        }
    }
}
