//! Shelving benchmark: `cargo bench --bench shelving`.
//!
//! Range 1 of the demo room (ten carriages, Modbus RTU over a pseudo-terminal) in hw-sim,
//! driven by the real range controller:
//! - overhead from the request to the command arriving at the simulated controller, beside
//!   a bare tokio-modbus client writing the same command (the baseline);
//! - time to open an aisle, request to operation done, against the physical minimum of
//!   the motion (longest carriage travel at top speed, plus the acceleration ramps),
//!   at time scale 10 (simulated seconds are reported).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use stackroom::config::RoomConfig;
use stackroom::demo;
use stackroom::shelving::plan::{Geometry, Goal};
use stackroom::shelving::{LinkState, RangeMotion};
use stackroom::shelving::{OpState, Shelving, Wiring};
use stackroom::sim::{self, SimSettings};
use tokio_modbus::prelude::*;

const SCALE: f64 = 10.0;

fn stats(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!(
        "p50 {:.2}, p99 {:.2}, max {:.2} (n = {})",
        p(0.5),
        p(0.99),
        v[v.len() - 1],
        v.len()
    )
}

async fn wait_done(shelving: &Shelving, op: &str) -> OpState {
    loop {
        if let Some(state) = shelving.operations.get(op).map(|o| o.state)
            && state.is_final()
        {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wait_idle(shelving: &Shelving) {
    loop {
        if shelving
            .range(1)
            .is_some_and(|v| v.link == LinkState::Up && v.motion == RangeMotion::Idle)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::main]
async fn main() {
    let config = RoomConfig::load(&demo::config_path()).unwrap();
    let mut only_range_1 = config.clone();
    only_range_1.keep_devices(|d| d.id == "shelving-1");
    // The pre-motion warning is a set wait, not the controller's overhead.
    only_range_1.motion.start_delay = Duration::ZERO;
    let settings = SimSettings {
        time_scale: SCALE,
        ..SimSettings::default()
    };
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let simulator = sim::start(&only_range_1, vec![], &settings, any)
        .await
        .unwrap();
    let path = simulator.path("shelving-1").unwrap().to_string();

    // Baseline first, on its own: a bare Modbus client writing "stop" (no motion).
    let mut baseline = Vec::new();
    {
        let line = tokio_serial::SerialStream::open(&tokio_serial::new(&path, 19200)).unwrap();
        let mut ctx = tokio_modbus::client::rtu::attach_slave(line, Slave(1));
        for _ in 0..50 {
            let t = Instant::now();
            ctx.write_single_register(0, 4).await.unwrap().unwrap();
            let at = simulator.last_command_at(1).unwrap();
            baseline.push(at.saturating_duration_since(t).as_secs_f64() * 1000.0);
        }
    }

    let wiring = Wiring {
        tcp_addresses: Default::default(),
        serial_paths: [("shelving-1".to_string(), path)].into(),
        mqtt: None,
    };
    let shelving = Shelving::start(&only_range_1, &wiring).unwrap();
    wait_idle(&shelving).await;
    let geometry = Geometry::of(config.layout.range(1).unwrap());
    let profile = &config
        .devices
        .iter()
        .find(|d| d.id == "shelving-1")
        .unwrap()
        .spec;
    let motion = profile.motion.clone().unwrap();
    let (v, a) = (motion.speed_mm_s, motion.accel_mm_s2);

    let mut overhead = Vec::new();
    let mut ratios = Vec::new();
    let mut totals = Vec::new();
    let mut minimums = Vec::new();
    let aisles = [5u16, 2, 9, 1, 6, 3, 8, 4, 7, 1];
    let mut current = shelving.range(1).unwrap().open_aisle.unwrap_or(1);
    for round in 0..2 {
        for &k in &aisles {
            if k == current {
                continue;
            }
            let from = geometry.target(Goal::OpenAisle(current));
            let to = geometry.target(Goal::OpenAisle(k));
            let travel = from
                .iter()
                .zip(&to)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            // Trapezoidal profile: travel at top speed plus one speed/accel for the ramps.
            let minimum = travel / v + v / a;
            let t = Instant::now();
            let op = shelving
                .motion(1, "open", Goal::OpenAisle(k), "bench", false)
                .await
                .unwrap();
            // The command reaches the simulated controller…
            loop {
                if let Some(at) = simulator.last_command_at(1).filter(|at| *at > t) {
                    overhead.push(at.duration_since(t).as_secs_f64() * 1000.0);
                    break;
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            // …and the aisle opens.
            let state = wait_done(&shelving, &op).await;
            assert_eq!(state, OpState::Done, "round {round}, aisle {k}");
            let simulated = t.elapsed().as_secs_f64() * SCALE;
            ratios.push(simulated / minimum);
            totals.push(simulated);
            minimums.push(minimum);
            current = k;
            wait_idle(&shelving).await;
        }
    }
    println!(
        "| request → command at the controller, range controller + Modbus RTU driver | {} ms | |",
        stats(overhead)
    );
    println!(
        "| baseline: bare tokio-modbus write → command at the controller | {} ms | |",
        stats(baseline)
    );
    println!(
        "| open an aisle, request → done (simulated s) | {} s | |",
        stats(totals)
    );
    println!(
        "| physical minimum of the same motions (travel / speed + speed / accel) | {} s | |",
        stats(minimums)
    );
    println!("| ratio, actual / physical minimum | {} | |", stats(ratios));
}
