//! Sweep benchmark: `cargo bench --bench sweep`.
//!
//! The demo room as `stackroom demo` runs it (5,400 seeded boxes, hw-sim at real speed,
//! seven readers: R2000 and Mercury behind multiplexers on pseudo-terminals, an Impinj-style
//! reader on the embedded MQTT broker), swept through the real service at the configured
//! dwell (100 ms):
//! - duration against the physical limit: readers run in parallel, so a sweep cannot be
//!   shorter than the busiest reader's ports × its time per port, which is the dwell or,
//!   where one inventory round takes longer (a round cannot be cut short), one round as the
//!   reader itself measured it in this run (an autonomous reader: two of its cycles); beside
//!   it the sum of all dwell times (one reader after another);
//! - placement against the simulator's truth: boxes found present on their own shelf.
//!
//! Three times: as shipped (the R2000s read four shelves per fast-switch command, as many
//! rounds per shelf as fit in the dwell, and a second look of 300 ms at the shelves of boxes
//! in doubt), the same without the second look, and the R2000s one shelf per command (set
//! antenna, then three rounds of 0x89) with the second look, as before the fast switch, to
//! show what each costs and buys. Each case runs in a process
//! of its own (the bench starts itself again with `SWEEP_BENCH_CASE=n`): a demo room keeps
//! simulating after its case ends, and two such rooms beside a third would load the machine.
//! Wrong placements are listed on stderr with their evidence.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use stackroom::config::RoomConfig;
use stackroom::config::{Apply, Scope};
use stackroom::demo;
use stackroom::rfid::reader::Mode;
use stackroom::rfid::sweep::{SweepRequest, SweepState};
use stackroom::server::Controller;
use stackroom::sim::{self, SimSettings};

/// (R2000 fast switch, second look).
const CASES: [(bool, bool); 3] = [(true, true), (true, false), (false, true)];

#[tokio::main]
async fn main() {
    if let Some(case) = std::env::var("SWEEP_BENCH_CASE")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
    {
        let (fast_switch, second_look) = CASES[case];
        run(fast_switch, second_look).await;
        return;
    }
    println!(
        "| R2000 command | second look | scope | antennas | duration | physical limit (busiest reader) | ratio | sum of dwell times | placed right |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let me = std::env::current_exe().expect("the bench binary");
    for case in 0..CASES.len() {
        let status = std::process::Command::new(&me)
            .env("SWEEP_BENCH_CASE", case.to_string())
            .status()
            .expect("the bench runs itself");
        assert!(status.success(), "case {case} failed");
    }
}

async fn run(fast_switch: bool, second_look: bool) {
    let data = tempfile::tempdir().unwrap();
    let mut config = RoomConfig::load(&demo::config_path()).unwrap();
    for d in &mut config.devices {
        if let Some(r) = d.spec.r2000.as_mut() {
            r.fast_switch = fast_switch;
        }
    }
    let command = if fast_switch {
        "0x8A, 4 shelves"
    } else {
        "0x74 + 0x89 ×3, 1 shelf"
    };
    if !second_look {
        config.sweeps.second_look = Duration::ZERO;
    }
    let dwell = config.sweeps.dwell;
    let mut controller = Controller::start(config, Some(data.path())).await.unwrap();
    demo::seed(&controller.locations).await.unwrap();
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let (simulator, _broker) = sim::simulate(&mut controller, SimSettings::default(), any, any)
        .await
        .unwrap();
    let rfid = controller.rfid.clone().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let truth: HashMap<String, String> = simulator
        .state()
        .tags
        .into_iter()
        .filter_map(|t| Some((t.epc, t.shelf?)))
        .collect();

    for (name, scope) in [
        ("range 1 (R2000 + M6e)", Scope::Range(1)),
        ("range 2 (Impinj + R2000 + M6e)", Scope::Range(2)),
        ("room", Scope::Room(true)),
    ] {
        let shelves: std::collections::HashSet<_> = scope
            .shelves(&controller.config.layout)
            .unwrap()
            .into_iter()
            .collect();
        let mut per_reader: HashMap<&str, u32> = HashMap::new();
        for a in controller
            .config
            .antennas
            .iter()
            .filter(|a| shelves.contains(&a.shelf))
        {
            *per_reader.entry(a.reader.as_str()).or_default() += 1;
        }
        let antennas: u32 = per_reader.values().sum();
        let start = Instant::now();
        let view = rfid
            .sweeps
            .start(
                SweepRequest {
                    scope,
                    apply: Apply::Report,
                    dwell_ms: None,
                },
                "bench",
            )
            .await
            .unwrap();
        let view = rfid.sweeps.wait(view.id).await.unwrap();
        let took = start.elapsed();
        assert_eq!(view.state, SweepState::Done, "{view:?}");
        // The readers' own measure of a round, from this sweep.
        let limit = per_reader
            .iter()
            .map(|(reader, ports)| {
                let handle = &rfid.readers()[*reader];
                match handle.mode {
                    Mode::Commanded => {
                        let round =
                            Duration::from_micros(handle.counters.round_us.load(Ordering::Relaxed));
                        dwell.max(round) * *ports
                    }
                    Mode::Autonomous { cycle, .. } => cycle * 2,
                }
            })
            .max()
            .unwrap_or_default();
        let report = rfid.sweeps.report(view.id).await.unwrap();
        let boxes = report
            .findings
            .iter()
            .filter(|f| f.archive_no.is_some())
            .count();
        let right = report
            .findings
            .iter()
            .filter(|f| f.status == "present" && f.found.as_ref() == truth.get(&f.epc))
            .count();
        for f in report
            .findings
            .iter()
            .filter(|f| f.archive_no.is_some())
            .filter(|f| !(f.status == "present" && f.found.as_ref() == truth.get(&f.epc)))
        {
            eprintln!(
                "wrong: {} bound {:?} found {:?} truth {:?} conf {:?} evidence {:?}",
                f.status,
                f.bound,
                f.found,
                truth.get(&f.epc),
                f.confidence,
                f.evidence
            );
        }
        let looked = match view.progress.second_look {
            _ if !second_look => "off".to_string(),
            n => format!("{n} shelves"),
        };
        println!(
            "| {command} | {looked} | {name} | {antennas} | {:.1} s | {:.1} s | {:.2}× | {:.1} s | {right} of {boxes} ({:.2} %) |",
            took.as_secs_f64(),
            limit.as_secs_f64(),
            took.as_secs_f64() / limit.as_secs_f64(),
            (dwell * antennas).as_secs_f64(),
            right as f64 / boxes.max(1) as f64 * 100.0
        );
    }
}
