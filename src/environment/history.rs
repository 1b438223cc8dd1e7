//! Readings in SQLite with their downsampled history: every reading for a few days
//! (`env_raw`), per-minute aggregates for some weeks (`env_minute`), per-hour aggregates
//! for ever (`env_hour`). The aggregates are updated as each reading is written, so there
//! is no batch job to fall behind; a purge drops what is past its keeping time.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::{Store, StoreError};
use crate::time::wall;

/// One reading of a point.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub point: String,
    pub at_ms: i64,
    pub temperature: Option<f64>,
    pub humidity: Option<f64>,
    /// A binary point's state (1 tripped / on, 0 not), an actuator's.
    pub value: Option<f64>,
}

fn tenths(x: Option<f64>) -> Option<i64> {
    x.filter(|v| v.is_finite())
        .map(|v| (v * 10.0).round() as i64)
}

/// Which table answered a history query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    Raw,
    Minute,
    Hour,
}

impl Resolution {
    fn table(self) -> &'static str {
        match self {
            Resolution::Raw => "env_raw",
            Resolution::Minute => "env_minute",
            Resolution::Hour => "env_hour",
        }
    }
}

/// Lowest, mean and highest value within a step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Stat {
    pub min: f64,
    pub avg: f64,
    pub max: f64,
}

/// One step of a history.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Step {
    pub at: DateTime<Utc>,
    /// Readings in the step.
    pub n: i64,
    pub temperature: Option<Stat>,
    pub humidity: Option<Stat>,
    pub value: Option<Stat>,
}

/// The history of a point.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Series {
    pub sensor: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub step_s: i64,
    /// Raw readings, per-minute or per-hour aggregates: the finest kept for `from`.
    pub resolution: Resolution,
    pub steps: Vec<Step>,
}

/// How long each resolution is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub raw_days: u32,
    pub minute_days: u32,
}

const DAY_MS: i64 = 86_400_000;

#[derive(Clone)]
pub struct History {
    store: Store,
}

const UPSERT: &str = "ON CONFLICT (point, at) DO UPDATE SET n = n + 1,
    t_min = min(coalesce(t_min, excluded.t_min), coalesce(excluded.t_min, t_min)),
    t_sum = coalesce(t_sum, 0) + coalesce(excluded.t_sum, 0),
    t_max = max(coalesce(t_max, excluded.t_max), coalesce(excluded.t_max, t_max)),
    h_min = min(coalesce(h_min, excluded.h_min), coalesce(excluded.h_min, h_min)),
    h_sum = coalesce(h_sum, 0) + coalesce(excluded.h_sum, 0),
    h_max = max(coalesce(h_max, excluded.h_max), coalesce(excluded.h_max, h_max)),
    v_min = min(coalesce(v_min, excluded.v_min), coalesce(excluded.v_min, v_min)),
    v_sum = coalesce(v_sum, 0) + coalesce(excluded.v_sum, 0),
    v_max = max(coalesce(v_max, excluded.v_max), coalesce(excluded.v_max, v_max))";

/// The id of a point's name, made on first use.
fn point_id(conn: &Connection, name: &str) -> Result<i64, StoreError> {
    conn.prepare_cached("INSERT OR IGNORE INTO env_points (name) VALUES (?1)")?
        .execute([name])?;
    Ok(conn
        .prepare_cached("SELECT id FROM env_points WHERE name = ?1")?
        .query_row([name], |r| r.get(0))?)
}

/// Writes readings and folds them into the minute and hour aggregates.
pub fn record_on(
    conn: &Connection,
    ids: &mut HashMap<String, i64>,
    readings: &[Reading],
) -> Result<(), StoreError> {
    let mut raw = conn.prepare_cached(
        "INSERT OR REPLACE INTO env_raw (point, at, t, h, v) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let aggregate = |table: &str| {
        format!(
            "INSERT INTO {table} (point, at, n, t_min, t_sum, t_max, h_min, h_sum, h_max, v_min, v_sum, v_max)
             VALUES (?1, ?2, 1, ?3, ?3, ?3, ?4, ?4, ?4, ?5, ?5, ?5) {UPSERT}"
        )
    };
    let mut minute = conn.prepare_cached(&aggregate("env_minute"))?;
    let mut hour = conn.prepare_cached(&aggregate("env_hour"))?;
    for r in readings {
        let id = match ids.get(&r.point) {
            Some(id) => *id,
            None => {
                let id = point_id(conn, &r.point)?;
                ids.insert(r.point.clone(), id);
                id
            }
        };
        let (t, h, v) = (tenths(r.temperature), tenths(r.humidity), tenths(r.value));
        raw.execute(params![id, r.at_ms, t, h, v])?;
        let s = r.at_ms.div_euclid(1000);
        minute.execute(params![id, s - s.rem_euclid(60), t, h, v])?;
        hour.execute(params![id, s - s.rem_euclid(3600), t, h, v])?;
    }
    Ok(())
}

/// Drops raw readings and minute aggregates past their keeping time.
pub fn purge_on(conn: &Connection, now_ms: i64, keep: Retention) -> Result<usize, StoreError> {
    let raw = conn.execute(
        "DELETE FROM env_raw WHERE at < ?1",
        [now_ms - keep.raw_days as i64 * DAY_MS],
    )?;
    let minute = conn.execute(
        "DELETE FROM env_minute WHERE at < ?1",
        [(now_ms - keep.minute_days as i64 * DAY_MS) / 1000],
    )?;
    Ok(raw + minute)
}

fn stat(n: i64, min: Option<i64>, sum: Option<i64>, max: Option<i64>) -> Option<Stat> {
    match (min, sum, max) {
        (Some(min), Some(sum), Some(max)) if n > 0 => Some(Stat {
            min: min as f64 / 10.0,
            avg: (sum as f64 / n as f64 / 10.0 * 100.0).round() / 100.0,
            max: max as f64 / 10.0,
        }),
        _ => None,
    }
}

impl History {
    pub fn new(store: Store) -> History {
        History { store }
    }

    /// Writes a batch of readings (one transaction with the store's other writes).
    pub async fn record(&self, readings: Vec<Reading>) -> Result<(), StoreError> {
        if readings.is_empty() {
            return Ok(());
        }
        // Ids are looked up per batch: a batch that rolls back leaves no stale id behind.
        self.store
            .write(move |conn| record_on(conn, &mut HashMap::new(), &readings))
            .await
    }

    pub async fn purge(&self, now_ms: i64, keep: Retention) -> Result<usize, StoreError> {
        self.store
            .write(move |conn| purge_on(conn, now_ms, keep))
            .await
    }

    /// min/avg/max per `step_s` from `from` to `to`, from the finest table still kept for
    /// `from`.
    pub async fn series(
        &self,
        sensor: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        step_s: i64,
        keep: Retention,
        now: DateTime<Utc>,
    ) -> Result<Series, StoreError> {
        let age_days = (now - from).num_milliseconds() as f64 / DAY_MS as f64;
        let resolution = if step_s >= 3600 || age_days > keep.minute_days as f64 {
            Resolution::Hour
        } else if step_s >= 60 || age_days > keep.raw_days as f64 {
            Resolution::Minute
        } else {
            Resolution::Raw
        };
        let unit = match resolution {
            Resolution::Raw => 1,
            Resolution::Minute => 60,
            Resolution::Hour => 3600,
        };
        let step_s = step_s.max(unit).div_euclid(unit) * unit;
        let name = sensor.to_string();
        let (from_s, to_s) = (from.timestamp(), to.timestamp());
        let steps = self
            .store
            .read(move |conn| {
                let Some(id) = conn
                    .prepare_cached("SELECT id FROM env_points WHERE name = ?1")?
                    .query_row([&name], |r| r.get::<_, i64>(0))
                    .optional()?
                else {
                    return Ok::<_, StoreError>(Vec::new());
                };
                let sql = match resolution {
                    Resolution::Raw => "SELECT (at / 1000 / ?2) * ?2 AS b, count(*),
                        min(t), sum(t), max(t), min(h), sum(h), max(h), min(v), sum(v), max(v)
                        FROM env_raw WHERE point = ?1 AND at >= ?3 * 1000 AND at < ?4 * 1000
                        GROUP BY b ORDER BY b"
                        .to_string(),
                    _ => format!(
                        "SELECT (at / ?2) * ?2 AS b, sum(n), min(t_min), sum(t_sum), max(t_max),
                         min(h_min), sum(h_sum), max(h_max), min(v_min), sum(v_sum), max(v_max)
                         FROM {} WHERE point = ?1 AND at >= ?3 AND at < ?4 GROUP BY b ORDER BY b",
                        resolution.table()
                    ),
                };
                let mut stmt = conn.prepare_cached(&sql)?;
                let rows = stmt.query_map(params![id, step_s, from_s, to_s], |r| {
                    let n: i64 = r.get(1)?;
                    Ok(Step {
                        at: wall(r.get::<_, i64>(0)? * 1000),
                        n,
                        temperature: stat(n, r.get(2)?, r.get(3)?, r.get(4)?),
                        humidity: stat(n, r.get(5)?, r.get(6)?, r.get(7)?),
                        value: stat(n, r.get(8)?, r.get(9)?, r.get(10)?),
                    })
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await?;
        Ok(Series {
            sensor: sensor.to_string(),
            from,
            to,
            step_s,
            resolution,
            steps,
        })
    }

    /// Lowest and highest temperature and humidity of `sensor` from `from` (per-minute
    /// aggregates), for the daily swing.
    pub async fn extremes(
        &self,
        sensor: &str,
        from: DateTime<Utc>,
    ) -> Result<Option<(f64, f64, f64, f64)>, StoreError> {
        let name = sensor.to_string();
        let from_s = from.timestamp();
        self.store
            .read(move |conn| {
                let row = conn
                    .prepare_cached(
                        "SELECT min(m.t_min), max(m.t_max), min(m.h_min), max(m.h_max)
                         FROM env_minute m JOIN env_points p ON p.id = m.point
                         WHERE p.name = ?1 AND m.at >= ?2",
                    )?
                    .query_row(params![name, from_s], |r| {
                        Ok((
                            r.get::<_, Option<i64>>(0)?,
                            r.get::<_, Option<i64>>(1)?,
                            r.get::<_, Option<i64>>(2)?,
                            r.get::<_, Option<i64>>(3)?,
                        ))
                    })?;
                Ok(match row {
                    (Some(a), Some(b), Some(c), Some(d)) => Some((
                        a as f64 / 10.0,
                        b as f64 / 10.0,
                        c as f64 / 10.0,
                        d as f64 / 10.0,
                    )),
                    _ => None,
                })
            })
            .await
    }

    /// The share of samples (minutes where kept, else hours) of `sensors` from `from` to
    /// `to` whose mean temperature and humidity were within the bands; with the count.
    pub async fn compliance(
        &self,
        sensors: Vec<String>,
        span: std::ops::Range<DateTime<Utc>>,
        temperature: (f64, f64),
        humidity: (f64, f64),
        keep: Retention,
        now: DateTime<Utc>,
    ) -> Result<(Option<f64>, i64, Resolution), StoreError> {
        let (from, to) = (span.start, span.end);
        let age_days = (now - from).num_milliseconds() as f64 / DAY_MS as f64;
        let resolution = if age_days > keep.minute_days as f64 {
            Resolution::Hour
        } else {
            Resolution::Minute
        };
        let (from_s, to_s) = (from.timestamp(), to.timestamp());
        let answer = self
            .store
            .read(move |conn| {
                let mut total = 0i64;
                let mut within = 0i64;
                for name in &sensors {
                    let sql = format!(
                        "SELECT count(*), coalesce(sum(CASE WHEN t_sum * 1.0 / n BETWEEN ?3 AND ?4
                              AND h_sum * 1.0 / n BETWEEN ?5 AND ?6 THEN 1 ELSE 0 END), 0)
                         FROM {} m JOIN env_points p ON p.id = m.point
                         WHERE p.name = ?1 AND m.at >= ?2 AND m.at < ?7 AND t_sum IS NOT NULL",
                        resolution.table()
                    );
                    let (n, ok): (i64, i64) = conn.prepare_cached(&sql)?.query_row(
                        params![
                            name,
                            from_s,
                            temperature.0 * 10.0,
                            temperature.1 * 10.0,
                            humidity.0 * 10.0,
                            humidity.1 * 10.0,
                            to_s
                        ],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?;
                    total += n;
                    within += ok;
                }
                Ok::<_, StoreError>((
                    (total > 0).then(|| within as f64 / total as f64),
                    total,
                    resolution,
                ))
            })
            .await?;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn reading(point: &str, at_ms: i64, t: f64, h: f64) -> Reading {
        Reading {
            point: point.into(),
            at_ms,
            temperature: Some(t),
            humidity: Some(h),
            value: None,
        }
    }

    #[tokio::test]
    async fn a_month_is_answered_from_the_downsampled_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let history = History::new(store);
        let keep = Retention {
            raw_days: 2,
            minute_days: 7,
        };
        let now = Utc.with_ymd_and_hms(2026, 6, 30, 0, 0, 0).unwrap();
        let start = now - chrono::Duration::days(40);
        // A reading every 5 minutes for 40 days: 20 °C, humidity 50 % but 70 % on day 10.
        let mut batch = Vec::new();
        let mut at = start;
        while at < now {
            let day = (at - start).num_days();
            let h = if day == 10 { 70.0 } else { 50.0 };
            batch.push(reading("th-1", at.timestamp_millis(), 20.0, h));
            at += chrono::Duration::minutes(5);
        }
        history.record(batch).await.unwrap();
        history.purge(now.timestamp_millis(), keep).await.unwrap();

        // The month: per day, from the hourly aggregates (the minutes are gone by then).
        let from = now - chrono::Duration::days(30);
        let month = history
            .series("th-1", from, now, 86_400, keep, now)
            .await
            .unwrap();
        assert_eq!(month.resolution, Resolution::Hour);
        assert_eq!(month.steps.len(), 30);
        assert_eq!(
            month.steps[0].humidity.unwrap().avg,
            70.0,
            "day 10 of 40 was damp"
        );
        let day = &month.steps[1];
        assert_eq!(day.n, 288, "12 readings an hour");
        assert_eq!(day.humidity.unwrap().avg, 50.0);
        assert_eq!(day.temperature.unwrap().max, 20.0);

        // Day 10 stood out; its maximum is kept in the hourly aggregate.
        let all = history
            .series("th-1", start, now, 86_400, keep, now)
            .await
            .unwrap();
        assert_eq!(all.steps.len(), 40);
        assert_eq!(all.steps[10].humidity.unwrap().max, 70.0);

        // The last day in minutes and in raw readings.
        let day_ago = now - chrono::Duration::days(1);
        let minutes = history
            .series("th-1", day_ago, now, 600, keep, now)
            .await
            .unwrap();
        assert_eq!(minutes.resolution, Resolution::Minute);
        assert_eq!(minutes.steps.len(), 144);
        let raw = history
            .series("th-1", day_ago, now, 1, keep, now)
            .await
            .unwrap();
        assert_eq!(raw.resolution, Resolution::Raw);
        assert_eq!(raw.steps.len(), 288);

        // Compliance: every day but day 10 entirely within 45-60 %.
        let day10 = start + chrono::Duration::days(10);
        let (share, n, _) = history
            .compliance(
                vec!["th-1".into()],
                day10..day10 + chrono::Duration::days(1),
                (14.0, 24.0),
                (45.0, 60.0),
                keep,
                now,
            )
            .await
            .unwrap();
        assert_eq!((share, n), (Some(0.0), 24));
        let (share, _, res) = history
            .compliance(
                vec!["th-1".into()],
                day_ago..now,
                (14.0, 24.0),
                (45.0, 60.0),
                keep,
                now,
            )
            .await
            .unwrap();
        assert_eq!((share, res), (Some(1.0), Resolution::Minute));
        let extremes = history.extremes("th-1", day_ago).await.unwrap();
        assert_eq!(extremes, Some((20.0, 20.0, 50.0, 50.0)));
    }
}
