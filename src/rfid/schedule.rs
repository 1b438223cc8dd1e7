//! Scheduled sweeps: one task per `[[sweeps.schedule]]` entry sleeps until its cron
//! expression's next time (the controller's local time) and starts its sweep. If another
//! sweep is running then, the run is skipped and recorded as such (`overlap = "skip"`), or
//! waits for it to end and says so in its note (`overlap = "wait"`).

use std::sync::Arc;

use chrono::Local;

use super::sweep::{SweepError, SweepRequest, Sweeps};
use crate::config::{Overlap, RoomConfig, Schedule};

/// Starts the schedule's tasks.
pub fn start(config: &Arc<RoomConfig>, sweeps: &Sweeps, tasks: &crate::link::Tasks) {
    for schedule in config.sweeps.schedule.clone() {
        let sweeps = sweeps.clone();
        tasks.spawn(async move {
            loop {
                let now = Local::now();
                let next = match schedule.cron.find_next_occurrence(&now, false) {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::error!(schedule = %schedule.name, error = %e, "no next time: the schedule stops");
                        return;
                    }
                };
                let wait = (next - now).to_std().unwrap_or_default();
                tracing::debug!(schedule = %schedule.name, next = %next, "next scheduled sweep");
                tokio::time::sleep(wait).await;
                run_once(&sweeps, &schedule).await;
            }
        });
    }
}

/// Runs one scheduled sweep now, as its overlap rule says.
pub async fn run_once(sweeps: &Sweeps, schedule: &Schedule) {
    let trigger = format!("schedule:{}", schedule.name);
    let request = SweepRequest {
        scope: schedule.scope.clone(),
        apply: schedule.apply,
        dwell_ms: None,
    };
    let mut note = String::new();
    loop {
        match sweeps.start_noted(request.clone(), &trigger, &note).await {
            Ok(view) => {
                tracing::info!(schedule = %schedule.name, sweep = view.id, "scheduled sweep started");
                return;
            }
            Err(SweepError::Busy(running)) if schedule.overlap == Overlap::Wait => {
                tracing::info!(schedule = %schedule.name, running, "waiting for the running sweep to end");
                note = format!("waited for sweep {running} to end");
                sweeps.idle().await;
            }
            Err(SweepError::Busy(running)) => {
                let why = format!("skipped: sweep {running} was running");
                tracing::warn!(schedule = %schedule.name, running, "scheduled sweep skipped");
                if let Err(e) = sweeps
                    .record_skipped(&trigger, &request.scope, request.apply, why)
                    .await
                {
                    tracing::error!(schedule = %schedule.name, error = %e, "could not record the skip");
                }
                return;
            }
            Err(e) => {
                tracing::error!(schedule = %schedule.name, error = %e, "scheduled sweep did not start");
                return;
            }
        }
    }
}
