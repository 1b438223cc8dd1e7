//! The radio: what an antenna hears in one inventory round.
//!
//! A tag on the antenna's own shelf is heard most of the time with a strong signal; a tag
//! on a neighbouring shelf of the same face (level above or below, section beside) is heard
//! now and then, weaker (a cross-read); now and then a tag is not heard at all. RSSI is
//! normally distributed around the mean for its case. Every draw comes from one seeded
//! ChaCha8 generator, so a run with a fixed seed is reproducible.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::world::World;

/// Parameters of the RF model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RfParams {
    /// Chance that a tag on the antenna's own shelf is heard in one round.
    pub read_probability: f64,
    /// Mean RSSI of a tag on the antenna's own shelf, dBm.
    pub rssi_mean_dbm: f64,
    /// Standard deviation of RSSI, dB.
    pub rssi_spread_db: f64,
    /// Chance that a tag on a neighbouring shelf is heard in one round.
    pub cross_read_probability: f64,
    /// How much weaker a cross-read is on average, dB.
    pub cross_read_drop_db: f64,
}

impl Default for RfParams {
    fn default() -> Self {
        RfParams {
            read_probability: 0.95,
            rssi_mean_dbm: -52.0,
            rssi_spread_db: 4.0,
            cross_read_probability: 0.3,
            cross_read_drop_db: 12.0,
        }
    }
}

/// One tag heard by one antenna.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TagObservation {
    pub epc: String,
    pub port: u16,
    /// dBm, rounded to whole dB as readers report it.
    pub rssi_dbm: i16,
    /// Carrier frequency of the read, kHz (FCC band hop table: 902.75 to 927.25 MHz).
    pub frequency_khz: u32,
    /// Phase angle, degrees.
    pub phase_deg: u16,
}

/// The seeded radio of the simulated room.
#[derive(Debug, Clone)]
pub struct Radio {
    rng: ChaCha8Rng,
    pub params: RfParams,
    /// The reader's transmit power relative to 30 dBm, dB: every RSSI moves with it.
    gain_db: f64,
}

impl Radio {
    pub fn new(seed: u64, params: RfParams) -> Radio {
        Radio {
            rng: ChaCha8Rng::seed_from_u64(seed),
            params,
            gain_db: 0.0,
        }
    }

    /// Sets the reader's transmit power (the parameters describe 30 dBm).
    pub fn set_power_dbm(&mut self, dbm: f64) {
        self.gain_db = dbm - 30.0;
    }

    /// A normal draw (Box–Muller).
    fn gauss(&mut self, mean: f64, spread: f64) -> f64 {
        let u1: f64 = self.rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = self.rng.random();
        mean + spread * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    fn observe(&mut self, epc: &str, port: u16, mean: f64) -> TagObservation {
        let rssi = self
            .gauss(mean + self.gain_db, self.params.rssi_spread_db)
            .clamp(-90.0, -20.0);
        TagObservation {
            epc: epc.to_string(),
            port,
            rssi_dbm: rssi.round() as i16,
            frequency_khz: 902_750 + 500 * self.rng.random_range(0..50u32),
            phase_deg: self.rng.random_range(0..360u16),
        }
    }

    /// One inventory round of the antenna on `port`, which faces shelf `shelf`.
    pub fn inventory(&mut self, world: &World, shelf: usize, port: u16) -> Vec<TagObservation> {
        let p = self.params;
        let mut heard = Vec::new();
        for epc in world.tags_on(shelf) {
            if self.rng.random_bool(p.read_probability.clamp(0.0, 1.0)) {
                heard.push(self.observe(epc, port, p.rssi_mean_dbm));
            }
        }
        for &other in world.neighbours(shelf) {
            for epc in world.tags_on(other) {
                if self
                    .rng
                    .random_bool(p.cross_read_probability.clamp(0.0, 1.0))
                {
                    heard.push(self.observe(epc, port, p.rssi_mean_dbm - p.cross_read_drop_db));
                }
            }
        }
        heard
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::tests::shelves;

    fn world() -> World {
        let mut w = World::new(shelves());
        for (i, s) in shelves().iter().enumerate() {
            for k in 0..5 {
                let epc = format!("E280{:04X}{:04X}", i, k);
                w.place_box(&format!("B-{i}-{k}"), &epc, Some(&s.address))
                    .unwrap();
            }
        }
        w
    }

    #[test]
    fn a_fixed_seed_gives_the_same_reads() {
        let w = world();
        let run = |seed| {
            let mut radio = Radio::new(seed, RfParams::default());
            (0..20)
                .flat_map(|_| radio.inventory(&w, 4, 1))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn own_shelf_is_heard_often_and_loud_neighbours_rarely_and_weaker() {
        let w = world();
        let centre = w.shelf_index("R1-C1-R-S2-L2").unwrap();
        let own: Vec<String> = w.tags_on(centre).to_vec();
        let mut radio = Radio::new(1, RfParams::default());
        let (mut own_reads, mut cross_reads, mut own_rssi, mut cross_rssi) = (0, 0, 0.0, 0.0);
        let rounds = 2000;
        for _ in 0..rounds {
            for o in radio.inventory(&w, centre, 3) {
                assert_eq!(o.port, 3);
                assert!((902_750..=927_250).contains(&o.frequency_khz));
                if own.contains(&o.epc) {
                    own_reads += 1;
                    own_rssi += o.rssi_dbm as f64;
                } else {
                    cross_reads += 1;
                    cross_rssi += o.rssi_dbm as f64;
                }
            }
        }
        let own_rate = own_reads as f64 / (rounds * 5) as f64;
        let cross_rate = cross_reads as f64 / (rounds * 4 * 5) as f64;
        assert!((own_rate - 0.95).abs() < 0.02, "own {own_rate}");
        assert!((cross_rate - 0.3).abs() < 0.02, "cross {cross_rate}");
        let (own_mean, cross_mean) = (own_rssi / own_reads as f64, cross_rssi / cross_reads as f64);
        assert!((own_mean + 52.0).abs() < 0.5, "{own_mean}");
        assert!((cross_mean + 64.0).abs() < 0.5, "{cross_mean}");
    }
}
