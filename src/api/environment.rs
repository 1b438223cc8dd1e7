//! Routes of the environment: current values, history, compliance, alarms; and the
//! Prometheus text at `/metrics`.

use std::fmt::Write as _;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Kind;
use super::{ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Problem, Who, parse_moment};
use crate::config::environment::PointKind;
use crate::environment::history::{Resolution, Series};
use crate::environment::{AlarmFilter, AlarmView, EnvError, PointState, PointView};
use crate::name::Name;

impl From<EnvError> for Problem {
    fn from(e: EnvError) -> Problem {
        let detail = e.to_string();
        match e {
            EnvError::NoAlarm(_) | EnvError::NoSensor(_) => Problem::not_found(detail),
            EnvError::NotActive { id, state } => {
                Problem::new(StatusCode::CONFLICT, Kind::AlarmNotActive, detail)
                    .with("alarm", id)
                    .with("state", state)
            }
            EnvError::Store(e) => {
                tracing::error!(error = %e, "environment store");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Kind::Internal,
                    "the database failed; see the log",
                )
            }
        }
    }
}

impl From<crate::store::StoreError> for Problem {
    fn from(e: crate::store::StoreError) -> Problem {
        Problem::from(EnvError::Store(e))
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct ZoneView {
    id: String,
    name: Name,
    ranges: Vec<u16>,
    /// Mean of the zone's fresh climate sensors.
    temperature: Option<f64>,
    humidity: Option<f64>,
    temperature_limits: [f64; 2],
    humidity_limits: [f64; 2],
}

#[derive(Serialize, ToSchema)]
pub(super) struct EnvironmentView {
    sensors: Vec<PointView>,
    zones: Vec<ZoneView>,
}

fn zones(s: &AppState, sensors: &[PointView]) -> Vec<ZoneView> {
    let config = s.environment.config();
    config
        .zones
        .iter()
        .map(|z| {
            let fresh: Vec<&PointView> = sensors
                .iter()
                .filter(|p| {
                    p.zone == z.id && p.kind == PointKind::Climate && p.state != PointState::Stale
                })
                .collect();
            let mean = |f: fn(&PointView) -> Option<f64>| {
                let v: Vec<f64> = fresh.iter().filter_map(|p| f(p)).collect();
                (!v.is_empty())
                    .then(|| (v.iter().sum::<f64>() / v.len() as f64 * 10.0).round() / 10.0)
            };
            ZoneView {
                id: z.id.clone(),
                name: z.name.clone(),
                ranges: z.ranges.clone(),
                temperature: mean(|p| p.temperature),
                humidity: mean(|p| p.humidity),
                temperature_limits: [z.temperature.min, z.temperature.max],
                humidity_limits: [z.humidity.min, z.humidity.max],
            }
        })
        .collect()
}

/// Every sensor and actuator now, and each zone's climate.
#[utoipa::path(get, path = "/api/v1/environment", tag = "environment",
    responses((status = 200, body = EnvironmentView)))]
pub(super) async fn environment(State(s): State<AppState>) -> ApiResult<EnvironmentView> {
    let sensors = s.environment.points_now().await?;
    let zones = zones(&s, &sensors);
    Ok(Json(EnvironmentView { sensors, zones }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct HistoryQuery {
    /// RFC 3339 time or a day; default: 24 hours before `to`.
    from: Option<String>,
    /// RFC 3339 time or a day (its end); default: now.
    to: Option<String>,
    /// Seconds per step (default: about 200 steps over the span).
    step: Option<i64>,
    /// `json` (default) or `csv`: the steps as a spreadsheet, for an inspection's records.
    format: Option<String>,
}

/// min/avg/max per step: raw readings for the last days, per-minute aggregates for weeks,
/// per-hour ones for years (`resolution` says which answered).
#[utoipa::path(get, path = "/api/v1/environment/{sensor}/history", tag = "environment",
    params(("sensor" = String, Path), HistoryQuery),
    responses((status = 200, body = Series), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn history(
    State(s): State<AppState>,
    ApiPath(sensor): ApiPath<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Response, Problem> {
    let csv = super::wants_csv(q.format.as_deref())?;
    if s.environment.config().point(&sensor).is_none() {
        return Err(EnvError::NoSensor(sensor).into());
    }
    let now = Utc::now();
    let to =
        q.to.as_deref()
            .map(|t| parse_moment(t, true))
            .transpose()?
            .unwrap_or(now);
    let from = q
        .from
        .as_deref()
        .map(|t| parse_moment(t, false))
        .transpose()?
        .unwrap_or(to - Duration::hours(24));
    if from >= to {
        return Err(Problem::invalid("from", "from must be before to"));
    }
    let span = (to - from).num_seconds().max(1);
    let step = q.step.unwrap_or((span / 200).max(1));
    if step < 1 || span / step > 10_000 {
        return Err(Problem::invalid(
            "step",
            "1 s or more, at most 10,000 steps per query",
        ));
    }
    let series = s
        .environment
        .history()
        .series(&sensor, from, to, step, s.environment.retention(), now)
        .await?;
    if !csv {
        return Ok(Json(series).into_response());
    }
    let stat = |v: Option<crate::environment::history::Stat>| match v {
        Some(v) => [v.min, v.avg, v.max].map(|x| format!("{x:.1}")),
        None => [String::new(), String::new(), String::new()],
    };
    let mut rows = vec![
        [
            "at",
            "readings",
            "temperature_min_c",
            "temperature_avg_c",
            "temperature_max_c",
            "humidity_min_pct",
            "humidity_avg_pct",
            "humidity_max_pct",
            "value_min",
            "value_avg",
            "value_max",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for step in &series.steps {
        let mut row = vec![step.at.to_rfc3339(), step.n.to_string()];
        row.extend(stat(step.temperature));
        row.extend(stat(step.humidity));
        row.extend(stat(step.value));
        rows.push(row);
    }
    let name = format!(
        "{sensor}-{}-{}.csv",
        from.format("%Y%m%d"),
        to.format("%Y%m%d")
    );
    super::csv_response(&rows, &name)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct ComplianceQuery {
    /// First day (YYYY-MM-DD, UTC); default: 30 days ago.
    from: Option<String>,
    /// Last day; default: today.
    to: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct ComplianceDay {
    zone: String,
    day: String,
    /// Share of the day's samples within the zone's limits, 0 to 1 (null: no readings).
    share: Option<f64>,
    samples: i64,
    resolution: Resolution,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Compliance {
    items: Vec<ComplianceDay>,
}

/// Per zone and day: the share of the day within the zone's temperature and humidity
/// limits (per minute where kept, else per hour), as inspection reports ask.
#[utoipa::path(get, path = "/api/v1/environment/compliance", tag = "environment",
    params(ComplianceQuery),
    responses((status = 200, body = Compliance), (status = 422, body = Problem)))]
pub(super) async fn compliance(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ComplianceQuery>,
) -> ApiResult<Compliance> {
    let now = Utc::now();
    let day = |t: DateTime<Utc>| {
        t.date_naive()
            .and_hms_opt(0, 0, 0)
            .map(|d| d.and_utc())
            .unwrap_or(t)
    };
    let to = day(q
        .to
        .as_deref()
        .map(|t| parse_moment(t, false))
        .transpose()?
        .unwrap_or(now));
    let from = day(q
        .from
        .as_deref()
        .map(|t| parse_moment(t, false))
        .transpose()?
        .unwrap_or(to - Duration::days(30)));
    if from > to || (to - from).num_days() > 366 {
        return Err(Problem::invalid(
            "from",
            "from is a day before to, at most 366 days apart",
        ));
    }
    let config = s.environment.config();
    let mut items = Vec::new();
    let mut d = from;
    while d <= to {
        for z in &config.zones {
            let sensors: Vec<String> = config
                .points
                .iter()
                .filter(|p| p.zone == z.id && p.kind == PointKind::Climate)
                .map(|p| p.id.clone())
                .collect();
            let (share, samples, resolution) = s
                .environment
                .history()
                .compliance(
                    sensors,
                    d..d + Duration::days(1),
                    (z.temperature.min, z.temperature.max),
                    (z.humidity.min, z.humidity.max),
                    s.environment.retention(),
                    now,
                )
                .await?;
            items.push(ComplianceDay {
                zone: z.id.clone(),
                day: d.format("%Y-%m-%d").to_string(),
                share: share.map(|x| (x * 10_000.0).round() / 10_000.0),
                samples,
                resolution,
            });
        }
        d += Duration::days(1);
    }
    Ok(Json(Compliance { items }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct AlarmQuery {
    /// `active`, `acknowledged`, `cleared`, or `open` (active or acknowledged).
    state: Option<String>,
    /// At most this many, newest first (default 100).
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct AlarmList {
    items: Vec<AlarmView>,
}

/// Alarms, newest first.
#[utoipa::path(get, path = "/api/v1/alarms", tag = "environment", params(AlarmQuery),
    responses((status = 200, body = AlarmList), (status = 422, body = Problem)))]
pub(super) async fn alarms(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<AlarmQuery>,
) -> ApiResult<AlarmList> {
    let filter = match q.state.as_deref().map(str::parse::<AlarmFilter>) {
        None => None,
        Some(Ok(filter)) => Some(filter),
        Some(Err(())) => {
            return Err(Problem::invalid(
                "state",
                "active, acknowledged, cleared or open",
            ));
        }
    };
    let items = s.environment.alarms(filter, q.limit.unwrap_or(100)).await?;
    Ok(Json(AlarmList { items }))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Ack {
    #[serde(default)]
    note: String,
}

/// Acknowledge an active alarm (who and the note are kept with it); it clears by itself
/// when its cause is gone.
#[utoipa::path(post, path = "/api/v1/alarms/{id}/ack", tag = "environment",
    params(("id" = i64, Path)), request_body = Ack,
    responses((status = 200, body = AlarmView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn ack_alarm(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(id): ApiPath<i64>,
    ApiJson(ack): ApiJson<Ack>,
) -> ApiResult<AlarmView> {
    if ack.note.len() > 2000 {
        return Err(Problem::invalid("note", "at most 2,000 characters"));
    }
    Ok(Json(
        s.environment.acknowledge(id, &who.name, &ack.note).await?,
    ))
}

/// A label value in the Prometheus text format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample's value as Prometheus writes it (`+Inf`, not Rust's `inf`).
fn sample(v: f64) -> String {
    match v {
        f64::INFINITY => "+Inf".into(),
        f64::NEG_INFINITY => "-Inf".into(),
        v if v.is_nan() => "NaN".into(),
        v => v.to_string(),
    }
}

/// Prometheus text: the environment's values beside the controller's own counters.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain")))]
pub(super) async fn metrics(State(s): State<AppState>) -> Result<impl IntoResponse, Problem> {
    let points = s.environment.points_now().await?;
    let open = s.environment.alarms(Some(AlarmFilter::Open), 1000).await?;
    let mut out = String::new();
    let mut family = |name: &str, help: &str, rows: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {}", sample(v));
        }
    };
    let of = |p: &PointView| format!("sensor=\"{}\",zone=\"{}\"", label(&p.id), label(&p.zone));
    let fresh = |p: &&PointView| p.state != PointState::Stale;
    family(
        "stackroom_temperature_celsius",
        "Temperature of a climate sensor (fresh readings only).",
        points
            .iter()
            .filter(fresh)
            .filter_map(|p| Some((of(p), p.temperature?)))
            .collect(),
    );
    family(
        "stackroom_humidity_percent",
        "Relative humidity of a climate sensor (fresh readings only).",
        points
            .iter()
            .filter(fresh)
            .filter_map(|p| Some((of(p), p.humidity?)))
            .collect(),
    );
    family(
        "stackroom_environment_point_value",
        "Binary sensors: 1 tripped; actuators: 1 on.",
        points
            .iter()
            .filter(fresh)
            .filter_map(|p| Some((format!("{},kind=\"{}\"", of(p), p.kind.as_str()), p.value?)))
            .collect(),
    );
    family(
        "stackroom_environment_point_stale",
        "1 while a point has no reading younger than its profile allows.",
        points
            .iter()
            .map(|p| {
                (
                    of(p),
                    if p.state == PointState::Stale {
                        1.0
                    } else {
                        0.0
                    },
                )
            })
            .collect(),
    );
    let mut kinds: std::collections::BTreeMap<String, f64> = Default::default();
    for a in &open {
        *kinds.entry(a.kind.to_string()).or_default() += 1.0;
    }
    family(
        "stackroom_alarms_open",
        "Open (active or acknowledged) alarms by kind.",
        kinds
            .into_iter()
            .map(|(k, n)| (format!("kind=\"{}\"", label(&k)), n))
            .collect(),
    );
    let ranges = s.shelving.ranges();
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let by_range = |f: &dyn Fn(&crate::shelving::controller::RangeView) -> f64| {
        ranges
            .iter()
            .map(|r| (format!("range=\"{}\"", r.range), f(r)))
            .collect::<Vec<_>>()
    };
    family(
        "stackroom_range_link_up",
        "1 while the range's controller answers.",
        by_range(&|r| flag(r.link == crate::shelving::LinkState::Up)),
    );
    family(
        "stackroom_range_moving",
        "1 while the range's carriages move.",
        by_range(&|r| flag(r.motion == crate::shelving::RangeMotion::Moving)),
    );
    family(
        "stackroom_range_estop",
        "1 while the range's emergency stop is pressed.",
        by_range(&|r| flag(r.estop)),
    );
    family(
        "stackroom_range_locked",
        "1 while the range is locked.",
        by_range(&|r| flag(r.locked)),
    );
    family(
        "stackroom_range_faults",
        "Faults the range reports.",
        by_range(&|r| r.faults.len() as f64),
    );
    if let Some(backups) = &s.backups {
        let last = backups.last_good();
        let dir = format!("dir=\"{}\"", label(&backups.dir().display().to_string()));
        family(
            "stackroom_backup_last_success_timestamp_seconds",
            "When the last scheduled backup that verified was taken (0: none yet).",
            vec![(dir.clone(), last.map_or(0.0, |t| t.timestamp() as f64))],
        );
        family(
            "stackroom_backup_age_seconds",
            "Seconds since the last scheduled backup that verified was taken (+Inf: none yet).",
            vec![(
                dir.clone(),
                last.map_or(f64::INFINITY, |t| {
                    (chrono::Utc::now() - t).num_milliseconds() as f64 / 1000.0
                }),
            )],
        );
        family(
            "stackroom_backup_failures",
            "Scheduled backups that failed since the controller started.",
            vec![(dir, backups.failures() as f64)],
        );
    }
    if let Some(rfid) = &s.rfid {
        use std::sync::atomic::Ordering;
        family(
            "stackroom_reader_reads",
            "Tag reads a reader has delivered since the start.",
            rfid.readers()
                .values()
                .map(|h| {
                    (
                        format!("reader=\"{}\"", label(&h.id)),
                        h.counters.reads.load(Ordering::Relaxed) as f64,
                    )
                })
                .collect(),
        );
        family(
            "stackroom_reader_failures",
            "Commands to a reader that failed since the start.",
            rfid.readers()
                .values()
                .map(|h| {
                    (
                        format!("reader=\"{}\"", label(&h.id)),
                        h.counters.failures.load(Ordering::Relaxed) as f64,
                    )
                })
                .collect(),
        );
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    ))
}
