//! `stackroom-sim`: the simulated room on its own, for people and programs that want to
//! talk to simulated hardware (or to try a driver) without the controller.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use stackroom::config::{Mqtt, RoomConfig};
use stackroom::location::LocationService;
use stackroom::mqtt::EmbeddedBroker;
use stackroom::sim::{self, SimSettings};
use stackroom::store::Store;

#[derive(Parser)]
#[command(
    name = "stackroom-sim",
    version,
    about = "Simulated shelving and RFID readers of a stackroom room, on their real wire protocols"
)]
struct Cli {
    /// The room config whose devices to simulate.
    #[arg(long)]
    config: PathBuf,
    /// Where the boxes are: a CSV `archive_no,epc,shelf`.
    #[arg(long, conflicts_with = "db")]
    placement: Option<PathBuf>,
    /// Where the boxes are: the controller's database (its bindings).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Address of the control API (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    control: SocketAddr,
    /// The broker for MQTT devices (default: the config's; an embedded one is started).
    #[arg(long)]
    mqtt: Option<String>,
    /// Seed of the radio model and the line faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
}

fn main() -> ExitCode {
    stackroom::logging::init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", stackroom::logging::chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = RoomConfig::load(&cli.config)?;
    let placement = match (&cli.placement, &cli.db) {
        (Some(file), _) => {
            let input = std::fs::File::open(file)
                .with_context(|| format!("{}: cannot open it", file.display()))?;
            sim::placement_csv(input).with_context(|| file.display().to_string())?
        }
        (None, Some(db)) => {
            if !db.exists() {
                bail!("{}: no such database", db.display());
            }
            let store = Store::open(db)?;
            let locations =
                LocationService::open(std::sync::Arc::new(config.clone()), store).await?;
            sim::placement_from(&locations).await?
        }
        (None, None) => Vec::new(),
    };
    let uses_mqtt = config
        .devices
        .iter()
        .any(|d| matches!(d.transport, stackroom::config::Transport::Mqtt { .. }));
    let mut embedded = None;
    // On a site broker each simulated device logs in with its password from the room's
    // secrets directory (where `stackroom broker-config` made it).
    let site_passwords = || {
        let grants = stackroom::bus::grants(&config, &config.bus.user);
        stackroom::bus::passwords(&config, &grants, false).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the simulated devices connect without passwords");
            Default::default()
        })
    };
    let site_broker = |url: &str| -> anyhow::Result<_> {
        Ok(hw_sim::mqtt_devices::Broker {
            passwords: site_passwords(),
            ..sim::broker(url)?
        })
    };
    let mqtt = match (&cli.mqtt, &config.mqtt) {
        (Some(url), _) => Some(site_broker(url)?),
        (None, _) if !uses_mqtt => None,
        (None, Mqtt::External { url }) => Some(site_broker(url)?),
        (None, Mqtt::Embedded { listen }) => {
            let broker = EmbeddedBroker::start(*listen, &config)?;
            let devices = broker.for_devices();
            embedded = Some(broker);
            Some(devices)
        }
    };
    let settings = SimSettings {
        seed: cli.seed,
        time_scale: cli.time_scale,
        mqtt,
        ..SimSettings::default()
    };
    let boxes = placement.len();
    let simulator = sim::start(&config, placement, &settings, cli.control).await?;
    println!("sim: http://{}", simulator.control);
    if let Some(broker) = &embedded {
        println!("mqtt: {}", broker.url());
    }
    for line in sim::describe(&simulator) {
        println!("{line}");
    }
    let _ = std::io::stdout().flush();
    tracing::info!(
        boxes,
        seed = cli.seed,
        time_scale = cli.time_scale,
        "simulating"
    );
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}
