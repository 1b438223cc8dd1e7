//! What every long-running loop shares: one back-off between connection attempts,
//! refusing what comes while there is no link, and the tasks of a service ([`Tasks`]).
//!
//! Every driver (shelving, RFID readers, environment devices, the event publisher) runs the
//! same rule: connect, work until the link fails, pause with [`Backoff`], connect afresh.
//! A command that arrives while there is no link is answered or dropped at once by
//! [`refusing`]; nothing is kept to be sent after a reconnect.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;

/// The pause before the next connection attempt: 100 ms, doubling with each failure up to
/// a cap (5 s unless a driver needs to retry sooner), back to 100 ms once the link works.
#[derive(Debug, Clone)]
pub struct Backoff {
    failures: u32,
    cap: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::capped(Duration::from_secs(5))
    }
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);

    /// A back-off that never waits longer than `cap`.
    pub fn capped(cap: Duration) -> Backoff {
        Backoff { failures: 0, cap }
    }

    /// The pause after one more failure.
    pub fn next_pause(&mut self) -> Duration {
        let pause = Backoff::FIRST
            .saturating_mul(1 << self.failures.min(16))
            .min(self.cap);
        self.failures = self.failures.saturating_add(1);
        pause
    }

    /// The link works again: the next failure starts from the first pause.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Waits for `until`, handing every command that arrives meanwhile to `refuse`; None when
/// the sender has gone (the driver should end).
pub async fn refusing<T, F: Future>(
    commands: &mut mpsc::Receiver<T>,
    until: F,
    mut refuse: impl FnMut(T),
) -> Option<F::Output> {
    let mut until = std::pin::pin!(until);
    loop {
        tokio::select! {
            biased;
            c = commands.recv() => refuse(c?),
            done = &mut until => return Some(done),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_up_to_its_cap_and_starts_over_after_a_success() {
        let mut b = Backoff::default();
        let pauses: Vec<u64> = (0..8).map(|_| b.next_pause().as_millis() as u64).collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_pause(), Duration::from_millis(100));
        let mut short = Backoff::capped(Duration::from_secs(1));
        let last = (0..100).map(|_| short.next_pause()).last();
        assert_eq!(
            last,
            Some(Duration::from_secs(1)),
            "no overflow after many failures"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn commands_during_the_pause_are_refused_not_kept() {
        let (tx, mut rx) = mpsc::channel(4);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        let mut refused = Vec::new();
        let out = refusing(&mut rx, tokio::time::sleep(Duration::from_secs(1)), |c| {
            refused.push(c)
        })
        .await;
        assert_eq!(out, Some(()));
        assert_eq!(refused, [1, 2]);
        assert!(rx.try_recv().is_err(), "nothing is left for the next link");
        drop(tx);
        let gone = refusing(&mut rx, std::future::pending::<()>(), |_: i32| {}).await;
        assert_eq!(gone, None);
    }
}

/// The long-running tasks of one service (its driver loops, its engine), ended together
/// at shutdown. Cheap to clone; dropping the last clone aborts what is left, so a service
/// that is dropped leaves nothing running behind it.
#[derive(Clone, Default)]
pub struct Tasks(std::sync::Arc<std::sync::Mutex<tokio::task::JoinSet<()>>>);

impl Tasks {
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut set = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Reap what has ended, so a long life of short tasks does not pile up.
        while set.try_join_next().is_some() {}
        set.spawn(task);
    }

    /// How many are still running.
    pub fn running(&self) -> usize {
        let mut set = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while set.try_join_next().is_some() {}
        set.len()
    }

    /// Ends every task and waits until each has: what they held (ports, connections) is
    /// released when this returns. Tasks spawned afterwards run as usual.
    pub async fn shut_down(&self) {
        let mut set = std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        set.abort_all();
        while set.join_next().await.is_some() {}
    }
}

/// A task that ends when this is dropped (a session's poller, with the session).
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
