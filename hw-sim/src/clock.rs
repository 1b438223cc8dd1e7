//! Simulated time: real time multiplied by a scale, so that tests run fast while the
//! protocols and the ratios between durations stay real.

use std::time::Duration;

/// The simulator's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    scale: f64,
}

impl Clock {
    /// `scale` simulated seconds pass per real second (at least 0.01).
    pub fn new(scale: f64) -> Clock {
        Clock {
            scale: if scale.is_finite() {
                scale.max(0.01)
            } else {
                1.0
            },
        }
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Simulated seconds in a span of real time.
    pub fn simulated(&self, real: Duration) -> f64 {
        real.as_secs_f64() * self.scale
    }

    /// The real time a span of simulated time takes.
    pub fn real(&self, simulated: Duration) -> Duration {
        simulated.div_f64(self.scale)
    }

    /// Waits out a span of simulated time.
    pub async fn sleep(&self, simulated: Duration) {
        if !simulated.is_zero() {
            tokio::time::sleep(self.real(simulated)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ten_times_faster() {
        let clock = Clock::new(10.0);
        let start = tokio::time::Instant::now();
        clock.sleep(Duration::from_secs(10)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert_eq!(clock.simulated(Duration::from_millis(500)), 5.0);
    }
}
