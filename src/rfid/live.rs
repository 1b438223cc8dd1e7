//! Live location: every tag read, from sweeps and from readers that read on their own,
//! flows through one bounded queue into one [`Pipeline`]; each tag's place is decided
//! from the evidence with hysteresis against where it was last placed.
//!
//! The queue holds [`QUEUE`] batches; a batch that finds it full is dropped and counted
//! (per reader), so a flood of reads costs memory up to the bound, never more, and is
//! never silent. Evidence is kept for a window ([`WINDOW`]), then forgotten; the last
//! decision of each tag stays (with when it was last heard). Per reader and antenna:
//! reads, reads per second over the last ten seconds, dropped reads.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc;
use utoipa::ToSchema;

use super::pipeline::{Pipeline, Settings, TagRead};
use crate::config::RoomConfig;
use crate::shelf::ShelfAddress;

/// Batches the queue holds.
pub const QUEUE: usize = 1024;
/// How long evidence is kept.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Seconds over which reads per second are averaged.
const RATE_SECONDS: usize = 10;

/// Where a tag was last placed by live reads.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LiveTag {
    pub epc: String,
    pub shelf: String,
    /// The shelf's share of the power received from the tag in the current window.
    pub confidence: f64,
    /// Since when the tag has been placed on this shelf.
    pub since: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Reads of the tag (after duplicate suppression) in the current window.
    pub reads: u64,
}

/// Counters of one antenna.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AntennaStats {
    pub port: u16,
    pub shelf: Option<String>,
    pub reads: u64,
    pub reads_per_s: f64,
}

/// Counters of one reader, as far as the live pipeline sees it.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ReaderStats {
    pub reads: u64,
    pub reads_per_s: f64,
    /// Reads dropped because the queue was full.
    pub dropped: u64,
    pub antennas: Vec<AntennaStats>,
}

/// Reads per second over the last [`RATE_SECONDS`] seconds.
#[derive(Debug, Default)]
struct Rate {
    buckets: [u64; RATE_SECONDS],
    /// The second the newest bucket counts.
    second: u64,
}

impl Rate {
    fn roll(&mut self, now: u64) {
        let gap = now.saturating_sub(self.second);
        for i in 1..=gap.min(RATE_SECONDS as u64) {
            self.buckets[((self.second + i) % RATE_SECONDS as u64) as usize] = 0;
        }
        self.second = self.second.max(now);
    }

    fn add(&mut self, now: u64, n: u64) {
        self.roll(now);
        self.buckets[(now % RATE_SECONDS as u64) as usize] += n;
    }

    fn per_second(&mut self, now: u64) -> f64 {
        self.roll(now);
        self.buckets.iter().sum::<u64>() as f64 / RATE_SECONDS as f64
    }
}

#[derive(Default)]
struct Counter {
    reads: u64,
    rate: Rate,
}

struct State {
    pipeline: Pipeline,
    window_start: Instant,
    tags: HashMap<String, LiveTag>,
    antennas: BTreeMap<(String, u16), Counter>,
    readers: BTreeMap<String, (Counter, u64)>,
    shelves: HashMap<(String, u16), ShelfAddress>,
}

/// The live pipeline; cheap to clone.
#[derive(Clone)]
pub struct Live {
    queue: mpsc::Sender<Vec<TagRead>>,
    state: Arc<Mutex<State>>,
    origin: Instant,
}

impl Live {
    /// Starts the pipeline's task for the room's antenna map.
    pub fn start(config: &RoomConfig, tasks: &crate::link::Tasks) -> Live {
        let map: Vec<_> = config
            .antennas
            .iter()
            .map(|a| (a.reader.clone(), a.port, a.shelf))
            .collect();
        let state = Arc::new(Mutex::new(State {
            pipeline: Pipeline::new(map.clone(), Settings::default()),
            window_start: Instant::now(),
            tags: HashMap::new(),
            antennas: BTreeMap::new(),
            readers: BTreeMap::new(),
            shelves: map.into_iter().map(|(r, p, s)| ((r, p), s)).collect(),
        }));
        let (queue, mut rx) = mpsc::channel::<Vec<TagRead>>(QUEUE);
        let live = Live {
            queue,
            state: state.clone(),
            origin: Instant::now(),
        };
        let origin = live.origin;
        tasks.spawn(async move {
            while let Some(batch) = rx.recv().await {
                let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
                take(&mut s, &batch, origin.elapsed().as_secs());
            }
        });
        live
    }

    /// Offers a batch of reads; if the queue is full it is dropped and counted.
    pub fn offer(&self, batch: Vec<TagRead>) {
        if batch.is_empty() {
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(batch)) = self.queue.try_send(batch) {
            let mut s = self.lock();
            for r in &batch {
                s.readers.entry(r.reader.clone()).or_default().1 += u64::from(r.count.max(1));
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where `epc` was last placed.
    pub fn tag(&self, epc: &str) -> Option<LiveTag> {
        self.lock().tags.get(epc).cloned()
    }

    /// Every tag placed, most recently heard first, at most `limit`.
    pub fn tags(&self, limit: usize) -> Vec<LiveTag> {
        let mut all: Vec<LiveTag> = self.lock().tags.values().cloned().collect();
        all.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.epc.cmp(&b.epc)));
        all.truncate(limit);
        all
    }

    /// Counters of `reader`.
    pub fn stats(&self, reader: &str) -> ReaderStats {
        let now = self.origin.elapsed().as_secs();
        let mut s = self.lock();
        let State {
            antennas,
            readers,
            shelves,
            ..
        } = &mut *s;
        let mut out = ReaderStats::default();
        if let Some((counter, dropped)) = readers.get_mut(reader) {
            out.reads = counter.reads;
            out.reads_per_s = counter.rate.per_second(now);
            out.dropped = *dropped;
        }
        for ((r, port), c) in antennas.iter_mut().filter(|((r, _), _)| r == reader) {
            out.antennas.push(AntennaStats {
                port: *port,
                shelf: shelves.get(&(r.clone(), *port)).map(|s| s.to_string()),
                reads: c.reads,
                reads_per_s: c.rate.per_second(now),
            });
        }
        out
    }
}

/// Takes one batch into the pipeline and re-decides the tags it heard.
fn take(s: &mut State, batch: &[TagRead], second: u64) {
    if s.window_start.elapsed() >= WINDOW {
        s.pipeline.clear();
        s.window_start = Instant::now();
    }
    let now = Utc::now();
    let mut heard: Vec<&str> = Vec::with_capacity(batch.len());
    for read in batch {
        let counted = s.pipeline.push(read);
        let n = u64::from(read.count.max(1));
        let reader = s.readers.entry(read.reader.clone()).or_default();
        reader.0.reads += n;
        reader.0.rate.add(second, n);
        let antenna = match s.antennas.get_mut(&(read.reader.clone(), read.port)) {
            Some(a) => a,
            None => s
                .antennas
                .entry((read.reader.clone(), read.port))
                .or_default(),
        };
        antenna.reads += n;
        antenna.rate.add(second, n);
        if counted {
            heard.push(&read.epc);
        }
    }
    heard.sort_unstable();
    heard.dedup();
    for epc in heard {
        let current = s
            .tags
            .get(epc)
            .and_then(|t| t.shelf.parse::<ShelfAddress>().ok());
        let Some(decision) = s.pipeline.decide(epc, current) else {
            continue;
        };
        let shelf = decision.shelf.to_string();
        let reads = decision.evidence.iter().map(|(_, e)| e.reads as u64).sum();
        match s.tags.get_mut(epc) {
            Some(t) => {
                if t.shelf != shelf {
                    t.shelf = shelf;
                    t.since = now;
                }
                t.confidence = decision.confidence;
                t.last_seen = now;
                t.reads = reads;
            }
            None => {
                s.tags.insert(
                    epc.to_string(),
                    LiveTag {
                        epc: epc.to_string(),
                        shelf,
                        confidence: decision.confidence,
                        since: now,
                        last_seen: now,
                        reads,
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_counts_the_last_ten_seconds() {
        let mut r = Rate::default();
        r.add(0, 50);
        r.add(5, 50);
        assert_eq!(r.per_second(5), 10.0);
        assert_eq!(r.per_second(10), 5.0, "second 0 has left the window");
        assert_eq!(r.per_second(100), 0.0);
    }
}
