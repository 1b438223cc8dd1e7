//! The decisions, without I/O, so they can be tested against a clock of our own: when an
//! alarm is raised and cleared, when the dehumidifier switches.

use std::time::{Duration, Instant};

use crate::config::environment::{Dehumidify, WithoutReading};

/// An alarm condition: raised once it has held for `hold`, cleared once the clear
/// condition holds (which, for a value, lies back inside the limit by a margin: the
/// hysteresis that keeps a value on the limit from flapping).
#[derive(Debug, Default, Clone)]
pub struct Condition {
    since: Option<Instant>,
    raised: bool,
}

/// What a condition did on an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Raise,
    Clear,
}

impl Condition {
    pub fn raised(&self) -> bool {
        self.raised
    }

    /// Marks the condition as raised (an open alarm found at start).
    pub fn set_raised(&mut self) {
        self.raised = true;
    }

    /// `bad`: the alarm's condition holds now; `good`: its clear condition holds now.
    pub fn update(
        &mut self,
        bad: bool,
        good: bool,
        hold: Duration,
        now: Instant,
    ) -> Option<Change> {
        if self.raised {
            if good {
                self.raised = false;
                self.since = None;
                return Some(Change::Clear);
            }
            return None;
        }
        if !bad {
            self.since = None;
            return None;
        }
        let since = *self.since.get_or_insert(now);
        if now.duration_since(since) >= hold {
            self.raised = true;
            return Some(Change::Raise);
        }
        None
    }
}

/// The dehumidifier's switch: on above the band, off once back below its lower switching
/// point, never sooner than the compressor's minimum on or off time after the last switch.
#[derive(Debug, Clone)]
pub struct Switch {
    on: bool,
    since: Option<Instant>,
}

impl Switch {
    /// A switch in state `on` (as the device reported it), free to switch at once.
    pub fn new(on: bool) -> Switch {
        Switch { on, since: None }
    }

    pub fn on(&self) -> bool {
        self.on
    }

    /// The state to command now given the zone's humidity (`None`: no fresh reading, and
    /// the band's `without_reading` policy decides).
    pub fn decide(&mut self, humidity: Option<f64>, band: &Dehumidify, now: Instant) -> bool {
        let rested = |min: Duration| self.since.is_none_or(|t| now.duration_since(t) >= min);
        let Some(h) = humidity else {
            let want = match band.without_reading {
                WithoutReading::Keep => self.on,
                WithoutReading::Off => false,
                WithoutReading::On => true,
            };
            let min = if self.on { band.min_on } else { band.min_off };
            if want != self.on && rested(min) {
                self.on = want;
                self.since = Some(now);
            }
            return self.on;
        };
        if !self.on && h > band.on_above && rested(band.min_off) {
            self.on = true;
            self.since = Some(now);
        } else if self.on && h < band.off_below && rested(band.min_on) {
            self.on = false;
            self.since = Some(now);
        }
        self.on
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alarm_waits_for_its_hold_and_clears_with_hysteresis() {
        let t0 = Instant::now();
        let hold = Duration::from_secs(60);
        let mut c = Condition::default();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // Humidity 61 % over a 60 % limit, clearing below 58 %.
        let step = |c: &mut Condition, h: f64, s: u64| c.update(h > 60.0, h < 58.0, hold, at(s));
        assert_eq!(step(&mut c, 61.0, 0), None);
        assert_eq!(step(&mut c, 61.0, 30), None);
        assert_eq!(step(&mut c, 59.0, 40), None, "a dip resets the hold");
        assert_eq!(step(&mut c, 61.0, 50), None);
        assert_eq!(step(&mut c, 61.0, 109), None);
        assert_eq!(step(&mut c, 61.0, 110), Some(Change::Raise));
        assert_eq!(step(&mut c, 62.0, 200), None, "raised once");
        assert_eq!(
            step(&mut c, 59.0, 210),
            None,
            "inside, but not by the margin"
        );
        assert_eq!(step(&mut c, 57.0, 220), Some(Change::Clear));
        assert_eq!(step(&mut c, 57.0, 230), None);
    }

    #[test]
    fn the_dehumidifier_switches_with_hysteresis_and_minimum_times() {
        let band = Dehumidify {
            on_above: 60.0,
            off_below: 55.0,
            min_on: Duration::from_secs(300),
            min_off: Duration::from_secs(120),
            without_reading: WithoutReading::Keep,
        };
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut s = Switch::new(false);
        assert!(!s.decide(Some(59.0), &band, at(0)));
        assert!(s.decide(Some(61.0), &band, at(10)), "on above the band");
        assert!(
            s.decide(Some(57.0), &band, at(20)),
            "still above the off point"
        );
        assert!(
            s.decide(Some(50.0), &band, at(100)),
            "dry, but the minimum on time is not up"
        );
        assert!(!s.decide(Some(50.0), &band, at(310)), "off after 300 s on");
        assert!(!s.decide(Some(65.0), &band, at(400)), "minimum off time");
        assert!(
            s.decide(Some(65.0), &band, at(430)),
            "on again after 120 s off"
        );
        assert!(
            s.decide(None, &band, at(2000)),
            "no reading, keep: no change"
        );
    }

    #[test]
    fn without_a_fresh_reading_the_policy_decides_after_the_minimum_time() {
        let band = |without_reading| Dehumidify {
            on_above: 60.0,
            off_below: 55.0,
            min_on: Duration::from_secs(300),
            min_off: Duration::from_secs(120),
            without_reading,
        };
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // Off (the default): running, it goes off once its minimum on time is up.
        let off = band(WithoutReading::Off);
        let mut s = Switch::new(false);
        assert!(s.decide(Some(65.0), &off, at(0)));
        assert!(s.decide(None, &off, at(100)), "its minimum on time first");
        assert!(!s.decide(None, &off, at(301)), "then off");
        assert!(!s.decide(None, &off, at(5000)), "and off it stays");
        // On: idle, it starts once its minimum off time is up.
        let on = band(WithoutReading::On);
        let mut s = Switch::new(false);
        assert!(s.decide(Some(65.0), &on, at(0)));
        assert!(!s.decide(Some(50.0), &on, at(300)), "dry: off");
        assert!(!s.decide(None, &on, at(360)), "its minimum off time first");
        assert!(s.decide(None, &on, at(421)), "then on");
        // A fresh reading takes over again: dry, off after the minimum on time.
        assert!(!s.decide(Some(50.0), &on, at(730)));
    }
}
