//! The door gate (防盗): a reader at the room's door with antennas inside and outside. The
//! order in which the two sides hear a tag gives its direction. A box that passes with an
//! approved or checked-out `external` loan is recorded on its loan; one that leaves
//! without is an alarm (event stream, MQTT `…/alarms`, audit) and is flagged
//! `left_without_loan` until it comes back through the gate.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, params};

use crate::audit::{Audit, NewEntry};
use crate::config::{Gate, RoomConfig};
use crate::environment::{AlarmKind, Environment};
use crate::rfid::reader::{ALL_PORTS, Mode, ReaderHandle};
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Inside,
    Outside,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Out,
    In,
}

/// Turns reads into passages: heard inside, then outside within `window`, is going out.
#[derive(Debug)]
pub struct Tracker {
    window: Duration,
    last: HashMap<String, (Side, Instant)>,
}

impl Tracker {
    pub fn new(window: Duration) -> Tracker {
        Tracker {
            window,
            last: HashMap::new(),
        }
    }

    pub fn read(&mut self, epc: &str, side: Side, now: Instant) -> Option<Direction> {
        let previous = self.last.insert(epc.to_string(), (side, now));
        // Forget tags not heard for a while (the map stays small).
        if self.last.len() > 10_000 {
            let window = self.window;
            self.last
                .retain(|_, (_, at)| now.duration_since(*at) < window);
        }
        match previous {
            Some((from, at)) if from != side && now.duration_since(at) <= self.window => {
                Some(match side {
                    Side::Outside => Direction::Out,
                    Side::Inside => Direction::In,
                })
            }
            _ => None,
        }
    }
}

/// Starts a watcher per gate of the config.
pub fn start(
    config: &RoomConfig,
    readers: &BTreeMap<String, ReaderHandle>,
    store: Store,
    environment: Environment,
    audit: Audit,
    tasks: &crate::link::Tasks,
) {
    for gate in &config.gates {
        let Some(handle) = readers.get(&gate.reader).cloned() else {
            tracing::error!(reader = %gate.reader, "the gate's reader has no driver");
            continue;
        };
        let watcher = Watcher {
            gate: gate.clone(),
            store: store.clone(),
            environment: environment.clone(),
            audit: audit.clone(),
        };
        tasks.spawn(watcher.run(handle));
    }
}

struct Watcher {
    gate: Gate,
    store: Store,
    environment: Environment,
    audit: Audit,
}

impl Watcher {
    async fn run(self, handle: ReaderHandle) {
        let mut tracker = Tracker::new(Duration::from_secs(10));
        // A reader that reads on its own is listened to on every port at once; one that is
        // commanded reads its ports in turn.
        let ports: Vec<u16> = match handle.mode {
            Mode::Autonomous { .. } => vec![ALL_PORTS],
            Mode::Commanded => self
                .gate
                .inside
                .iter()
                .chain(&self.gate.outside)
                .copied()
                .collect(),
        };
        loop {
            for &port in &ports {
                match handle.inventory(port, Duration::from_millis(300)).await {
                    Ok(mut reads) => {
                        reads.sort_by_key(|r| r.at_ms);
                        for r in reads {
                            let side = if self.gate.inside.contains(&r.port) {
                                Side::Inside
                            } else if self.gate.outside.contains(&r.port) {
                                Side::Outside
                            } else {
                                continue;
                            };
                            if let Some(direction) = tracker.read(&r.epc, side, Instant::now())
                                && let Err(e) = self.passage(&r.epc, direction).await
                            {
                                tracing::error!(error = %e, epc = %r.epc, "a gate passage could not be recorded");
                            }
                        }
                    }
                    // A gate hears nothing most of the time; a silent reader is no alarm.
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
    }

    async fn passage(&self, epc: &str, direction: Direction) -> Result<(), StoreError> {
        let epc = epc.to_string();
        let gate = self.gate.reader.clone();
        let now = chrono::Utc::now().timestamp_millis();
        let out = direction == Direction::Out;
        // Whose box, on which loan, and what changed.
        let found = self
            .store
            .write(move |conn| {
                let Some((box_id, archive_no)): Option<(i64, String)> = conn
                    .prepare_cached("SELECT id, archive_no FROM boxes WHERE epc = ?1")?
                    .query_row([&epc], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?
                else {
                    return Ok(None);
                };
                let loan: Option<(i64, String)> = conn
                    .prepare_cached(
                        "SELECT l.id, l.state FROM loan_boxes lb JOIN loans l ON l.id = lb.loan_id
                         WHERE lb.box_id = ?1 AND lb.returned_at IS NULL AND l.kind = 'external'
                           AND l.state IN ('approved', 'checked_out', 'return_refused')",
                    )?
                    .query_row([box_id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((id, state)) = &loan {
                    let note = if out {
                        format!("{archive_no} left through {gate}")
                    } else {
                        format!("{archive_no} came back through {gate}")
                    };
                    conn.prepare_cached(
                        "INSERT INTO loan_events (loan_id, at, actor, from_state, to_state, note) VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
                    )?
                    .execute(params![id, now, gate, state, note])?;
                }
                let flagged = if loan.is_some() {
                    false
                } else if out {
                    conn.execute(
                        "INSERT INTO box_flags (box_id, state, since, note) VALUES (?1, 'left_without_loan', ?2, ?3)
                         ON CONFLICT (box_id) DO UPDATE SET since = excluded.since, note = excluded.note",
                        params![box_id, now, format!("through {gate}")],
                    )?;
                    true
                } else {
                    conn.execute("DELETE FROM box_flags WHERE box_id = ?1", [box_id])? > 0
                };
                Ok::<_, StoreError>(Some((archive_no, loan.map(|l| l.0), flagged)))
            })
            .await?;
        let Some((archive_no, loan, flagged)) = found else {
            tracing::info!(gate = %self.gate.reader, "a tag of no box passed the gate");
            return Ok(());
        };
        let way = if out { "out" } else { "in" };
        let gate = &self.gate.reader;
        match (loan, out, flagged) {
            (Some(loan), ..) => {
                self.audit
                    .record(NewEntry::new(
                        gate,
                        "gate",
                        format!("{archive_no} {way}"),
                        format!("loan {loan}"),
                    ))
                    .await;
            }
            (None, true, _) => {
                let message = format!("box {archive_no} left through {gate} without a loan");
                tracing::warn!(%archive_no, %gate, "box left without a loan");
                self.audit
                    .record(NewEntry::new(
                        gate,
                        "gate",
                        format!("{archive_no} out"),
                        "alarm: no loan",
                    ))
                    .await;
                if let Err(e) = self
                    .environment
                    .raise(
                        AlarmKind::Gate,
                        gate,
                        &archive_no,
                        message,
                        serde_json::json!({"box": archive_no, "gate": gate}),
                    )
                    .await
                {
                    tracing::error!(error = %e, "the gate alarm could not be recorded");
                }
            }
            (None, false, flagged) => {
                self.audit
                    .record(NewEntry::new(
                        gate,
                        "gate",
                        format!("{archive_no} in"),
                        if flagged { "back" } else { "no loan" },
                    ))
                    .await;
                if flagged
                    && let Err(e) = self.environment.clear(AlarmKind::Gate, &archive_no).await
                {
                    tracing::error!(error = %e, "the gate alarm could not be cleared");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_of_the_sides_gives_the_direction() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut t = Tracker::new(Duration::from_secs(10));
        assert_eq!(t.read("E1", Side::Inside, at(0)), None);
        assert_eq!(
            t.read("E1", Side::Inside, at(100)),
            None,
            "lingering inside"
        );
        assert_eq!(t.read("E1", Side::Outside, at(600)), Some(Direction::Out));
        assert_eq!(t.read("E1", Side::Outside, at(700)), None, "one passage");
        assert_eq!(t.read("E2", Side::Outside, at(0)), None);
        assert_eq!(t.read("E2", Side::Inside, at(500)), Some(Direction::In));
        assert_eq!(t.read("E3", Side::Inside, at(0)), None);
        assert_eq!(
            t.read("E3", Side::Outside, at(20_000)),
            None,
            "too long apart: no passage"
        );
    }
}
