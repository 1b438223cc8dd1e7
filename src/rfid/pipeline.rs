//! From tag reads to locations, sans-IO.
//!
//! Reads are noisy: a tag is heard by its own shelf's antenna most of the time and
//! strongly, by the neighbouring shelves' antennas now and then and more weakly, and
//! sometimes not at all. So the place of a tag is decided from all the evidence in a window,
//! never from the last read:
//! 1. **Duplicates** — the same tag on the same antenna within `dedupe_ms` is one read (a
//!    reader may report a tag several times per round); its strongest RSSI is kept.
//! 2. **Evidence** — per (tag, shelf): how many reads, their power summed (in milliwatts, so
//!    one strong read outweighs several weak ones) and the strongest RSSI.
//! 3. **Decision** — the shelf with the most received power wins; the confidence is its
//!    share of the tag's total power. Where a sweep says how long each shelf was listened to
//!    (a second look listens longer), power is weighed per millisecond of listening. For
//!    live location a new shelf must beat the current one by `hysteresis` (×) before the
//!    decision changes.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use crate::shelf::ShelfAddress;

/// One tag heard by one antenna.
#[derive(Debug, Clone, PartialEq)]
pub struct TagRead {
    pub reader: String,
    /// Antenna port, 1-based.
    pub port: u16,
    /// EPC, upper-case hex.
    pub epc: String,
    pub rssi_dbm: f64,
    /// Milliseconds on the reading host's monotonic clock.
    pub at_ms: u64,
    pub frequency_khz: Option<u32>,
    pub phase_deg: Option<f32>,
    /// How many reads this one stands for: a reader that merges the repeated reads of a
    /// tag (Mercury's tag buffer) reports them once with their count; 1 otherwise.
    pub count: u32,
}

/// What was heard of a tag on one shelf.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Evidence {
    pub reads: u32,
    /// Sum of the reads' power, milliwatts.
    pub power_mw: f64,
    pub max_rssi_dbm: f64,
}

/// Where a tag is, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub epc: String,
    pub shelf: ShelfAddress,
    /// The winning shelf's share of all the power received from the tag, 0 to 1.
    pub confidence: f64,
    /// Every shelf the tag was heard on, strongest first.
    pub evidence: Vec<(ShelfAddress, Evidence)>,
}

/// Counters of a pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counters {
    pub reads: u64,
    pub duplicates: u64,
    /// Reads on an antenna the antenna map does not know.
    pub unmapped: u64,
}

/// The pipeline's settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub dedupe_ms: u64,
    /// Live location: a challenger must have this many times the power of the current shelf.
    pub hysteresis: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            dedupe_ms: 50,
            hysteresis: 1.5,
        }
    }
}

#[derive(Debug, Default)]
struct TagState {
    /// Evidence per shelf index.
    shelves: Vec<(u32, Evidence)>,
    /// Last read per antenna index, for duplicate suppression: (at_ms, evidence slot).
    last: Vec<(u32, u64)>,
}

/// Accumulates reads and decides locations.
pub struct Pipeline {
    settings: Settings,
    /// (reader, port) → antenna index; antenna index → shelf index.
    antennas: HashMap<(String, u16), u32>,
    antenna_shelf: Vec<u32>,
    shelves: Vec<ShelfAddress>,
    /// How long each shelf's antennas were listened to, ms (by shelf index); all zero where
    /// nobody says (the live pipeline).
    listened_ms: Vec<f64>,
    tags: HashMap<String, TagState>,
    pub counters: Counters,
}

fn milliwatts(dbm: f64) -> f64 {
    10f64.powf(dbm / 10.0)
}

impl Pipeline {
    /// A pipeline for an antenna map: (reader, port, shelf).
    pub fn new(
        map: impl IntoIterator<Item = (String, u16, ShelfAddress)>,
        settings: Settings,
    ) -> Pipeline {
        let mut antennas = HashMap::new();
        let mut antenna_shelf = Vec::new();
        let mut shelves: Vec<ShelfAddress> = Vec::new();
        let mut shelf_index: HashMap<ShelfAddress, u32> = HashMap::new();
        for (reader, port, shelf) in map {
            let s = *shelf_index.entry(shelf).or_insert_with(|| {
                shelves.push(shelf);
                shelves.len() as u32 - 1
            });
            antennas.insert((reader, port), antenna_shelf.len() as u32);
            antenna_shelf.push(s);
        }
        Pipeline {
            settings,
            antennas,
            antenna_shelf,
            listened_ms: vec![0.0; shelves.len()],
            shelves,
            tags: HashMap::new(),
            counters: Counters::default(),
        }
    }

    /// The antenna on `port` of `reader` was listened to for `time` (a sweep's pass). Once
    /// shelves were listened to for different times, a shelf's evidence is weighed per
    /// millisecond of listening: a shelf read again for longer (a second look) hears its
    /// neighbours' tags more often, which says nothing about where they are.
    pub fn listened(&mut self, reader: &str, port: u16, time: Duration) {
        if let Some(&antenna) = self.antennas.get(&(reader.to_string(), port)) {
            let shelf = self.antenna_shelf[antenna as usize] as usize;
            self.listened_ms[shelf] += time.as_secs_f64() * 1000.0;
        }
    }

    /// A shelf's evidence, weighed by how long it was listened to.
    fn score(&self, shelf: u32, e: &Evidence) -> f64 {
        match self.listened_ms[shelf as usize] {
            ms if ms > 0.0 => e.power_mw / ms,
            _ => e.power_mw,
        }
    }

    /// Takes one read; false if it was a duplicate or from an unmapped antenna.
    pub fn push(&mut self, read: &TagRead) -> bool {
        self.counters.reads += 1;
        let Some(&antenna) = self.antennas.get(&(read.reader.clone(), read.port)) else {
            self.counters.unmapped += 1;
            return false;
        };
        let shelf = self.antenna_shelf[antenna as usize];
        let tag = match self.tags.get_mut(read.epc.as_str()) {
            Some(t) => t,
            None => self.tags.entry(read.epc.clone()).or_default(),
        };
        let slot = match tag.shelves.iter().position(|(s, _)| *s == shelf) {
            Some(i) => i,
            None => {
                tag.shelves.push((
                    shelf,
                    Evidence {
                        reads: 0,
                        power_mw: 0.0,
                        max_rssi_dbm: f64::NEG_INFINITY,
                    },
                ));
                tag.shelves.len() - 1
            }
        };
        let evidence = &mut tag.shelves[slot].1;
        let duplicate = match tag.last.iter_mut().find(|(a, _)| *a == antenna) {
            Some((_, at)) => {
                let dup = read.at_ms.saturating_sub(*at) < self.settings.dedupe_ms;
                if !dup {
                    *at = read.at_ms;
                }
                dup
            }
            None => {
                tag.last.push((antenna, read.at_ms));
                false
            }
        };
        if duplicate {
            self.counters.duplicates += 1;
            evidence.max_rssi_dbm = evidence.max_rssi_dbm.max(read.rssi_dbm);
            return false;
        }
        let count = read.count.max(1);
        evidence.reads += count;
        evidence.power_mw += f64::from(count) * milliwatts(read.rssi_dbm);
        evidence.max_rssi_dbm = evidence.max_rssi_dbm.max(read.rssi_dbm);
        true
    }

    /// Tags heard so far.
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.tags.keys().map(String::as_str)
    }

    /// Shelves the map's antennas face.
    pub fn shelves(&self) -> &[ShelfAddress] {
        &self.shelves
    }

    /// Where `epc` is, from all the evidence; `current` (live location) resists a change
    /// unless the challenger is `hysteresis` times stronger.
    pub fn decide(&self, epc: &str, current: Option<ShelfAddress>) -> Option<Decision> {
        let tag = self.tags.get(epc)?;
        let mut scored: Vec<(ShelfAddress, Evidence, f64)> = tag
            .shelves
            .iter()
            .map(|(s, e)| (self.shelves[*s as usize], *e, self.score(*s, e)))
            .collect();
        let total: f64 = scored.iter().map(|(_, _, score)| score).sum();
        scored.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
        let (best, _, best_score) = *scored.first()?;
        let winner = match current.and_then(|c| scored.iter().find(|(s, _, _)| *s == c)) {
            Some((c, _, score)) if best_score < score * self.settings.hysteresis => *c,
            _ => best,
        };
        let score = scored
            .iter()
            .find(|(s, _, _)| *s == winner)
            .map_or(0.0, |(_, _, score)| *score);
        Some(Decision {
            epc: epc.to_string(),
            shelf: winner,
            confidence: if total > 0.0 { score / total } else { 0.0 },
            evidence: scored.into_iter().map(|(s, e, _)| (s, e)).collect(),
        })
    }

    /// Forgets everything heard (a new window).
    pub fn clear(&mut self) {
        self.tags.clear();
    }
}

/// The baselines the benchmark compares with: the shelf of the tag's last read, and of its
/// single strongest read.
pub mod baseline {
    use std::collections::HashMap;

    use super::TagRead;

    /// "Last read wins": epc → (reader, port).
    pub fn last_read(reads: &[TagRead]) -> HashMap<&str, (&str, u16)> {
        let mut out = HashMap::new();
        for r in reads {
            out.insert(r.epc.as_str(), (r.reader.as_str(), r.port));
        }
        out
    }

    /// "Single strongest read": epc → (reader, port).
    pub fn strongest_read(reads: &[TagRead]) -> HashMap<&str, (&str, u16)> {
        let mut best: HashMap<&str, (f64, (&str, u16))> = HashMap::new();
        for r in reads {
            let e = best
                .entry(r.epc.as_str())
                .or_insert((f64::NEG_INFINITY, (r.reader.as_str(), r.port)));
            if r.rssi_dbm > e.0 {
                *e = (r.rssi_dbm, (r.reader.as_str(), r.port));
            }
        }
        best.into_iter().map(|(k, (_, a))| (k, a)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shelf(level: u16) -> ShelfAddress {
        ShelfAddress {
            range: 1,
            carriage: 1,
            face: crate::shelf::Face::Right,
            section: 1,
            level,
        }
    }

    fn read(port: u16, epc: &str, rssi: f64, at_ms: u64) -> TagRead {
        TagRead {
            reader: "r".into(),
            port,
            epc: epc.into(),
            rssi_dbm: rssi,
            at_ms,
            frequency_khz: None,
            phase_deg: None,
            count: 1,
        }
    }

    fn pipeline() -> Pipeline {
        Pipeline::new(
            (1..=3).map(|l| ("r".to_string(), l, shelf(l))),
            Settings::default(),
        )
    }

    #[test]
    fn the_evidence_decides_not_the_last_read() {
        let mut p = pipeline();
        // Own shelf (port 2): strong, often. Neighbour (port 3): weak, last.
        for t in 0..5 {
            p.push(&read(2, "A", -50.0, t * 100));
        }
        p.push(&read(3, "A", -64.0, 600));
        let d = p.decide("A", None).unwrap();
        assert_eq!(d.shelf, shelf(2));
        assert!(d.confidence > 0.9, "{d:?}");
        assert_eq!(d.evidence[0].1.reads, 5);
        assert_eq!(d.evidence.len(), 2);
        let reads = [read(2, "A", -50.0, 0), read(3, "A", -64.0, 1)];
        let last = baseline::last_read(&reads);
        assert_eq!(last["A"], ("r", 3), "the baseline is fooled");
    }

    #[test]
    fn a_shelf_listened_to_longer_does_not_win_by_listening_longer() {
        // The own shelf (port 2) was read once, as a first pass reads it; the shelf above
        // (port 3) was looked at again, four times as long, and cross-read the tag thrice.
        let mut p = pipeline();
        p.push(&read(2, "A", -56.0, 0));
        for t in 1..=3 {
            p.push(&read(3, "A", -58.0, t * 100));
        }
        assert_eq!(p.decide("A", None).unwrap().shelf, shelf(3), "raw power");
        p.listened("r", 2, Duration::from_millis(100));
        p.listened("r", 3, Duration::from_millis(400));
        let d = p.decide("A", None).unwrap();
        assert_eq!(d.shelf, shelf(2), "{d:?}");
        assert!(d.confidence > 0.6, "{d:?}");
        // An antenna the map does not know changes nothing.
        p.listened("other", 2, Duration::from_secs(9));
        assert_eq!(p.decide("A", None).unwrap(), d);
    }

    #[test]
    fn duplicates_within_the_window_count_once() {
        let mut p = pipeline();
        assert!(p.push(&read(1, "A", -55.0, 0)));
        assert!(!p.push(&read(1, "A", -50.0, 10)));
        assert!(p.push(&read(1, "A", -55.0, 80)));
        assert_eq!(p.counters.duplicates, 1);
        let d = p.decide("A", None).unwrap();
        assert_eq!(d.evidence[0].1.reads, 2);
        assert_eq!(
            d.evidence[0].1.max_rssi_dbm, -50.0,
            "the duplicate's RSSI still counts as the peak"
        );
        assert!(!p.push(&read(9, "A", -40.0, 100)));
        assert_eq!(p.counters.unmapped, 1);
    }

    #[test]
    fn hysteresis_keeps_a_live_location_steady() {
        let mut p = pipeline();
        p.push(&read(1, "A", -50.0, 0));
        p.push(&read(2, "A", -49.0, 0));
        assert_eq!(p.decide("A", None).unwrap().shelf, shelf(2), "stronger");
        assert_eq!(
            p.decide("A", Some(shelf(1))).unwrap().shelf,
            shelf(1),
            "not enough to move it"
        );
        for t in 1..4 {
            p.push(&read(2, "A", -49.0, t * 100));
        }
        assert_eq!(
            p.decide("A", Some(shelf(1))).unwrap().shelf,
            shelf(2),
            "now it moves"
        );
    }
}
