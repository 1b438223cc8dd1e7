//! The fault campaign's share for CI: a few hundred seeded scenarios over every shelving
//! transport with the simulated PLCs' interlocks off, judged by the oracle of
//! `fault_campaign` (see there). The benchmark `campaign` runs ten thousand and more.

mod fault_campaign;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_plcs_interlocks_off_the_controller_alone_keeps_people_safe() {
    let scenarios = std::env::var("STACKROOM_CAMPAIGN_SCENARIOS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(240);
    let report = fault_campaign::run(fault_campaign::Settings {
        seed: 16,
        scenarios,
        ranges_per_transport: 3,
        time_scale: 10.0,
    })
    .await;
    println!("{}", report.summary());
    assert_eq!(report.scenarios, scenarios);
    assert!(
        report.motion_commands > scenarios / 2,
        "motions were tried: {}",
        report.summary()
    );
    assert!(
        report.hazards.values().sum::<usize>() > scenarios / 2,
        "{}",
        report.summary()
    );
    assert!(report.violations.is_empty(), "{}", report.summary());
}
