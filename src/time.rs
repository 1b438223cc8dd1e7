//! Time: the one unit of wall time and the clock it is read from.
//!
//! The store, the wire and the API's history count wall time in [`Millis`] since the Unix
//! epoch, read from a [`Clock`] (the system's in production, a [`ManualClock`] in tests).
//! Durations inside the controller's loops are tokio's `Instant`, never wall time, so that a
//! clock stepped by NTP cannot stretch a deadline and tests can pause and advance it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Where wall time comes from.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> Millis;

    fn now(&self) -> DateTime<Utc> {
        wall(self.now_ms())
    }
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        Utc::now().timestamp_millis()
    }
}

/// A clock that moves only when told to; clones share the time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn at(ms: Millis) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(ms)))
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    pub fn set(&self, ms: Millis) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

/// The system's wall time now.
pub fn now_ms() -> Millis {
    SystemClock.now_ms()
}

/// A stored time as a date. Only times this program wrote are stored, so one out of
/// chrono's range means a corrupted row: it shows as the earliest date there is rather than
/// as a plausible one.
pub fn wall(ms: Millis) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_its_clones_share_it() {
        let clock = ManualClock::at(1_000);
        let twin = clock.clone();
        clock.advance(Duration::from_millis(250));
        assert_eq!(twin.now_ms(), 1_250);
        assert_eq!(twin.now().timestamp_millis(), 1_250);
        clock.set(5);
        assert_eq!(twin.now_ms(), 5);
    }

    #[test]
    fn a_corrupted_time_is_not_a_plausible_one() {
        assert_eq!(wall(i64::MAX), DateTime::<Utc>::MIN_UTC);
        assert_eq!(wall(0).timestamp_millis(), 0);
    }
}
