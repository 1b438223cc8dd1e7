//! The fault campaign at scale: `cargo bench --bench campaign`.
//!
//! The scenarios of `tests/fault_campaign` (see there: every shelving transport, the
//! simulated PLCs' interlocks off, people, e-stops, unplugs, line faults, faults,
//! obstacles, room alarms, Stop and Lock, judged by an oracle over the PLCs' command logs
//! and the world) — ten thousand by default. `CAMPAIGN_SCENARIOS`, `CAMPAIGN_RANGES` (per
//! transport) and `CAMPAIGN_SEED` change it. Prints a table row per rule for
//! BENCHMARKS.md; exits non-zero if any rule was broken.

mod common;
#[path = "../tests/fault_campaign/mod.rs"]
mod fault_campaign;

use common::env;

fn main() {
    let settings = fault_campaign::Settings {
        seed: env("CAMPAIGN_SEED", 2026),
        scenarios: env("CAMPAIGN_SCENARIOS", 10_000) as usize,
        ranges_per_transport: env("CAMPAIGN_RANGES", 8) as u16,
        time_scale: 10.0,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(fault_campaign::run(settings.clone()));
    println!("{settings:?}");
    println!("{}", report.summary());
    println!("| rule | events |");
    println!("| --- | --- |");
    for (rule, n) in report.counts() {
        println!("| {rule} | {n} |");
    }
    if !report.violations.is_empty() {
        std::process::exit(1);
    }
}
