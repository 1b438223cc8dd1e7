//! Motion planning for one range, sans-IO: where the carriages must go, and which aisles a
//! motion narrows (the ones nobody may be in).
//!
//! The rail is as long as the carriages plus one aisle, so the free space is one aisle
//! wide. Opening aisle `k` puts carriages `1..=k` against the left end and `k+1..=n` against
//! the right end; that arrangement is the only one with aisle `k` open, so the plan that
//! reaches it moves each carriage once, straight to its place, and moves only carriages
//! between the open aisle and the new one. Fixed carriages never move.
//!
//! Gaps are numbered as on the wire (`stackroom_wire::shelving`): 0 the left wall gap, k
//! aisle k, n the right wall gap. A motion *touches* every gap a moving carriage moves
//! towards: whatever the order and speed in which the carriages really start, only those
//! gaps can narrow on the way, so only those must be clear.

use crate::layout::RangeLayout;

/// What a motion should achieve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    OpenAisle(u16),
    /// Pack every movable carriage to the left.
    Close,
    /// Spread the free space evenly over the aisles, for air.
    Ventilate,
}

/// One carriage's move.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Move {
    /// 1-based.
    pub carriage: u16,
    pub from_mm: f64,
    pub to_mm: f64,
}

/// Carriages closer than this to their place have arrived; aisles narrower than this less
/// than before have not narrowed.
pub const TOLERANCE_MM: f64 = 5.0;

/// The geometry of a range.
#[derive(Debug, Clone)]
pub struct Geometry {
    widths: Vec<f64>,
    fixed: Vec<bool>,
    aisle_mm: f64,
}

impl Geometry {
    pub fn of(range: &RangeLayout) -> Geometry {
        Geometry {
            widths: range.carriages.iter().map(|c| c.width_mm as f64).collect(),
            fixed: range.carriages.iter().map(|c| c.fixed).collect(),
            aisle_mm: range.aisle_width_mm as f64,
        }
    }

    pub fn carriages(&self) -> usize {
        self.widths.len()
    }

    pub fn aisles(&self) -> u16 {
        self.widths.len() as u16 - 1
    }

    pub fn rail_mm(&self) -> f64 {
        self.widths.iter().sum::<f64>() + self.aisle_mm
    }

    pub fn fixed(&self, carriage: usize) -> bool {
        self.fixed[carriage]
    }

    /// Width of aisle `k` (1-based) for carriage positions `pos`.
    pub fn gap(&self, pos: &[f64], k: u16) -> f64 {
        let i = k as usize - 1;
        pos[i + 1] - (pos[i] + self.widths[i])
    }

    /// The aisle at (nearly) full width, if one is.
    pub fn open_aisle(&self, pos: &[f64]) -> Option<u16> {
        (1..=self.aisles()).find(|&k| self.gap(pos, k) >= self.aisle_mm - TOLERANCE_MM)
    }

    /// Where the carriages stand once `goal` is reached. Fixed carriages (only the end ones
    /// can be) stay at their end of the rail.
    pub fn target(&self, goal: Goal) -> Vec<f64> {
        let n = self.carriages();
        let mut target = vec![0.0; n];
        // How many carriages go to the left end; None: spread them.
        let left = match goal {
            Goal::OpenAisle(k) => Some((k as usize).min(n)),
            Goal::Close => Some(n),
            Goal::Ventilate => None,
        };
        match left {
            Some(k) => {
                let mut x = 0.0;
                for (slot, width) in target.iter_mut().zip(&self.widths).take(k) {
                    *slot = x;
                    x += width;
                }
                let mut x = self.rail_mm();
                for i in (k..n).rev() {
                    x -= self.widths[i];
                    target[i] = x;
                }
            }
            None => {
                let share = self.aisle_mm / (n - 1) as f64;
                let mut x = 0.0;
                for (slot, width) in target.iter_mut().zip(&self.widths) {
                    *slot = x;
                    x += width + share;
                }
            }
        }
        if self.fixed[0] {
            target[0] = 0.0;
        }
        if self.fixed[n - 1] {
            target[n - 1] = self.rail_mm() - self.widths[n - 1];
        }
        target
    }

    /// The moves from `current` to the goal: only carriages that must move, each once.
    pub fn plan(&self, goal: Goal, current: &[f64]) -> Vec<Move> {
        let target = self.target(goal);
        current
            .iter()
            .zip(&target)
            .enumerate()
            .filter(|(i, (from, to))| !self.fixed[*i] && (*from - *to).abs() > TOLERANCE_MM)
            .map(|(i, (from, to))| Move {
                carriage: i as u16 + 1,
                from_mm: *from,
                to_mm: *to,
            })
            .collect()
    }

    /// The aisles that are narrower at the end of the way from `current` to `target`.
    pub fn narrowed(&self, current: &[f64], target: &[f64]) -> Vec<u16> {
        (1..=self.aisles())
            .filter(|&k| self.gap(target, k) < self.gap(current, k) - TOLERANCE_MM)
            .collect()
    }

    /// The gaps (walls included) that may narrow at some moment on the way from `current`
    /// to `target`: the gap on the side each moving carriage moves towards.
    pub fn touched(&self, current: &[f64], target: &[f64]) -> Vec<u16> {
        let mut gaps: Vec<u16> = current
            .iter()
            .zip(target)
            .enumerate()
            .filter(|(_, (from, to))| (*to - *from).abs() > TOLERANCE_MM)
            .map(|(i, (from, to))| if to < from { i as u16 } else { i as u16 + 1 })
            .collect();
        gaps.sort_unstable();
        gaps.dedup();
        gaps
    }

    /// The number of the last gap: the one at the right wall.
    pub fn right_wall_gap(&self) -> u16 {
        self.widths.len() as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::tests::range;
    use proptest::prelude::*;

    fn geometry(n: u16) -> Geometry {
        Geometry::of(&range(1, n, 1, 1))
    }

    proptest! {
        /// From any aisle to any aisle: the target opens it, fixed carriages stay, only the
        /// carriages between the two aisles move, each by one aisle width, and the moves are
        /// as few as can be.
        #[test]
        fn plans_are_minimal_and_never_move_a_fixed_carriage(n in 3u16..14, from in 1u16..13, to in 1u16..13) {
            let g = geometry(n);
            let from = from.min(n - 1);
            let to = to.min(n - 1);
            let start = g.target(Goal::OpenAisle(from));
            prop_assert_eq!(g.open_aisle(&start), Some(from));
            let moves = g.plan(Goal::OpenAisle(to), &start);
            let end = g.target(Goal::OpenAisle(to));
            prop_assert_eq!(g.open_aisle(&end), Some(to));
            prop_assert!(moves.iter().all(|m| !g.fixed(m.carriage as usize - 1)));
            let (lo, hi) = (from.min(to), from.max(to));
            prop_assert_eq!(moves.len(), (hi - lo) as usize, "carriages {}..={} move", lo + 1, hi);
            for m in &moves {
                prop_assert!(m.carriage > lo && m.carriage <= hi);
                prop_assert!(((m.to_mm - m.from_mm).abs() - 900.0).abs() < 1e-6);
            }
            // Only the aisle that was open narrows at the end; on the way, every gap a
            // carriage moves towards may: the open one and the shut ones between.
            let narrowed = g.narrowed(&start, &end);
            let touched = g.touched(&start, &end);
            if from == to {
                prop_assert!(narrowed.is_empty());
                prop_assert!(touched.is_empty());
            } else {
                prop_assert_eq!(narrowed, vec![from]);
                prop_assert!(touched.contains(&from));
                let expected: Vec<u16> = if to > from { (from..to).collect() } else { (to + 1..=from).collect() };
                prop_assert_eq!(touched, expected);
            }
        }

        #[test]
        fn targets_keep_carriages_apart_and_on_the_rail(n in 2u16..14, k in 1u16..13, goal in 0u8..3) {
            let g = geometry(n);
            let goal = match goal { 0 => Goal::OpenAisle(k.min(n - 1)), 1 => Goal::Close, _ => Goal::Ventilate };
            let t = g.target(goal);
            for j in 1..=g.aisles() {
                prop_assert!(g.gap(&t, j) >= -1e-6);
            }
            prop_assert!(t[0] >= 0.0 && t[n as usize - 1] + 600.0 <= g.rail_mm() + 1e-6);
        }
    }

    #[test]
    fn ventilating_spreads_the_space_and_narrows_the_open_aisle() {
        let g = geometry(10);
        let start = g.target(Goal::OpenAisle(4));
        let t = g.target(Goal::Ventilate);
        for k in 1..=9 {
            assert!((g.gap(&t, k) - 100.0).abs() < 1e-6);
        }
        assert_eq!(g.narrowed(&start, &t), vec![4]);
        assert_eq!(g.open_aisle(&t), None);
    }

    #[test]
    fn a_movable_end_carriage_touches_its_wall_gap() {
        let mut layout = range(1, 4, 1, 1);
        layout.carriages.iter_mut().for_each(|c| c.fixed = false);
        let g = Geometry::of(&layout);
        // Packed right (aisle 0 … gap 0 open), then closing packs them left: every
        // carriage moves left, towards the gap on its left; the right wall gap opens.
        let right = g.target(Goal::OpenAisle(0));
        assert_eq!(g.touched(&right, &g.target(Goal::Close)), vec![0, 1, 2, 3]);
        assert_eq!(g.right_wall_gap(), 4);
        assert_eq!(g.touched(&g.target(Goal::Close), &right), vec![1, 2, 3, 4]);
    }
}
