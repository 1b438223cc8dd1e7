//! The `stackroom` command.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::{Parser, Subcommand};
use stackroom::access::Role;
use stackroom::config::RoomConfig;
use stackroom::demo;
use stackroom::location::LocationError;
use stackroom::server::Controller;
use stackroom::shelving::Wiring;
#[cfg(feature = "demo")]
use stackroom::sim::{self, SimSettings};

/// mimalloc rather than glibc's allocator: the request path allocates small and often, and
/// glibc's malloc and free were an eighth of `stackroom serve`'s samples under locate load
/// (BENCHMARKS.md). Built without transparent huge pages (`no_thp`), which it would
/// otherwise ask for: they kept `stackroom serve` above 150 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "stackroom",
    version,
    about = "Controller of an archive stack room with RFID compact shelving"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the demo room (config/demo-room.toml) with seeded boxes and serve the API.
    #[cfg(feature = "demo")]
    Demo {
        /// Address to serve the API on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Address of the simulator's control API (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        sim_control: SocketAddr,
        /// Address of the embedded MQTT broker (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        mqtt_listen: SocketAddr,
        /// Simulated seconds per real second (carriages move this much faster).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        /// Data directory (default: the config's storage.data_dir).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Run as this room of the demo site (`stack-2`: its own boxes, numbered 0461-…).
        #[arg(long, default_value = "stack-1")]
        room: String,
        /// The room's broker instead of the embedded one: mqtt://host:port, a Mosquitto set
        /// up by `stackroom broker-config` for this room and data directory.
        #[arg(long)]
        broker: Option<String>,
        /// Run a site of this many demo rooms (2 to 9) instead: each room on a free port,
        /// Debian's Mosquitto as the site broker bridged to each room's, and the site API on
        /// --listen.
        #[arg(long, conflicts_with_all = ["room", "broker"], value_parser = clap::value_parser!(u32).range(2..=9))]
        rooms: Option<u32>,
    },
    /// Run the controller of the room described by a config file.
    Serve {
        #[arg(long)]
        config: PathBuf,
        /// Address to serve the API on (default: the config's api.listen).
        #[arg(long)]
        listen: Option<SocketAddr>,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Check a room config and summarise it.
    CheckConfig { file: PathBuf },
    /// Serve one site of many rooms (site.toml): follows every room's change feed through
    /// the site broker into a replica, searches and locates across the rooms, forwards
    /// retrieve to the room's controller.
    Site {
        #[arg(long)]
        config: PathBuf,
        /// Address to serve the site API on (default: the config's api.listen).
        #[arg(long)]
        listen: Option<SocketAddr>,
        #[command(subcommand)]
        action: Option<SiteAction>,
    },
    /// Write a site's first room config (commented, checked) and make its MQTT passwords;
    /// asks for what the flags do not give when run at a terminal (or with --ask).
    Init(InitArgs),
    /// Write the site broker's config for a room: mosquitto.conf, passwd and acl in --out;
    /// makes the devices' missing passwords in the secrets directory.
    BrokerConfig {
        #[arg(long)]
        config: PathBuf,
        /// Where to write the files.
        #[arg(long)]
        out: PathBuf,
        /// Port the broker listens on (default: the broker URL's, else 1883).
        #[arg(long)]
        port: Option<u16>,
        /// Address the broker listens on (default: all).
        #[arg(long)]
        bind: Option<String>,
        #[command(flatten)]
        tls: ListenerTlsArgs,
    },
    /// Run an inventory sweep on a running controller, with a progress bar (Ctrl-C cancels).
    Sweep {
        /// What to read: room, range=R, or shelves=ADDRESS,ADDRESS,...
        #[arg(long)]
        scope: String,
        /// report (default) or sync (re-bind misplaced boxes found with enough confidence).
        #[arg(long, default_value = "report")]
        apply: String,
        /// Time on each antenna, ms (default: the controller's sweeps.dwell_ms).
        #[arg(long)]
        dwell_ms: Option<u64>,
        /// The controller's API.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        api: String,
        /// Also write the report as CSV to this file.
        #[arg(long)]
        report: Option<PathBuf>,
        /// An API token of an operator or above (archivist for --apply sync); better from
        /// the environment (STACKROOM_TOKEN) or --token-file than on the command line, where
        /// other users see it in the process list.
        #[arg(
            long,
            env = "STACKROOM_TOKEN",
            hide_env_values = true,
            required_unless_present = "token_file",
            conflicts_with = "token_file"
        )]
        token: Option<String>,
        /// A file holding the token (readable by its owner only).
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Make, list and revoke API tokens (in the room's database; a running controller sees
    /// them at once).
    Token {
        #[command(subcommand)]
        action: TokenAction,
        #[command(flatten)]
        room: Room,
    },
    /// List loans from the room's database.
    Loans {
        #[command(subcommand)]
        action: LoansAction,
        #[command(flatten)]
        room: Room,
    },
    /// Print box labels (PDF, or SVG for an --out ending in .svg): a range, shelves or
    /// boxes. Recorded in the audit trail.
    Labels {
        /// Every box of this range, in shelf order.
        #[arg(long)]
        range: Option<u16>,
        /// Every box on these shelves (comma-separated addresses).
        #[arg(long)]
        shelves: Option<String>,
        /// These boxes (comma-separated archive numbers).
        #[arg(long)]
        boxes: Option<String>,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        room: Room,
    },
    /// Export the audit trail as CSV.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
        #[command(flatten)]
        room: Room,
    },
    /// Back the room's database up to FILE (or into a directory), while the controller
    /// runs: copied from one snapshot, verified, with FILE.manifest.json beside it.
    Backup {
        file: PathBuf,
        /// Replace an existing backup of that name.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        room: Room,
    },
    /// Check a backup against its manifest: the files' SHA-256, SQLite's integrity check,
    /// every table's rows.
    VerifyBackup { file: PathBuf },
    /// Restore a backup as the room's database (the controller must be stopped); the
    /// database there before is kept aside in DATA/before-restore-TIME/.
    Restore {
        backup: PathBuf,
        #[command(flatten)]
        room: Room,
    },
    /// Import boxes from a CSV file: all rows or none.
    Import {
        file: PathBuf,
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct InitArgs {
    /// Where to write the config (e.g. /etc/stackroom/room.toml).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
    /// Ask for every answer, even when not at a terminal (answers on stdin).
    #[arg(long)]
    ask: bool,
    #[arg(long)]
    site: Option<String>,
    #[arg(long)]
    site_name: Option<String>,
    #[arg(long)]
    room: Option<String>,
    #[arg(long)]
    room_name: Option<String>,
    /// zh or en: how shelf addresses are said in words.
    #[arg(long)]
    language: Option<String>,
    #[arg(long)]
    ranges: Option<u16>,
    /// Carriages per range.
    #[arg(long)]
    carriages: Option<u16>,
    /// Sections per carriage face.
    #[arg(long)]
    sections: Option<u16>,
    /// Levels per section.
    #[arg(long)]
    levels: Option<u16>,
    /// Boxes per shelf.
    #[arg(long)]
    capacity: Option<u16>,
    /// The shelving controller of each range in order: PROFILE@PORT (/dev/ttyUSB0,
    /// tcp:HOST:502, mqtt:PREFIX).
    #[arg(long = "shelving")]
    shelving: Vec<stackroom::init::Wired>,
    /// The readers in order, as many as the shelves need: PROFILE@PORT.
    #[arg(long = "reader")]
    readers: Vec<stackroom::init::Wired>,
    /// The site broker (mqtt://stackroom@HOST:1883, mqtts://…) or embedded.
    #[arg(long)]
    broker: Option<String>,
    /// storage.data_dir (default /var/lib/stackroom).
    #[arg(long)]
    data: Option<PathBuf>,
    /// profiles_dir (default /usr/share/stackroom/device-profiles).
    #[arg(long)]
    profiles_dir: Option<PathBuf>,
    /// api.listen (default 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<String>,
}

impl InitArgs {
    fn answers(&self) -> stackroom::init::Answers {
        let mut a = stackroom::init::Answers::defaults();
        let set = |into: &mut String, from: &Option<String>| {
            if let Some(v) = from {
                into.clone_from(v);
            }
        };
        set(&mut a.site_id, &self.site);
        set(&mut a.site_name, &self.site_name);
        set(&mut a.room_id, &self.room);
        set(&mut a.room_name, &self.room_name);
        set(&mut a.language, &self.language);
        set(&mut a.broker, &self.broker);
        set(&mut a.listen, &self.listen);
        for (into, from) in [
            (&mut a.ranges, self.ranges),
            (&mut a.carriages, self.carriages),
            (&mut a.sections, self.sections),
            (&mut a.levels, self.levels),
            (&mut a.capacity, self.capacity),
        ] {
            if let Some(v) = from {
                *into = v;
            }
        }
        a.shelving.clone_from(&self.shelving);
        a.readers.clone_from(&self.readers);
        if let Some(d) = &self.data {
            a.data_dir.clone_from(d);
        }
        if let Some(d) = &self.profiles_dir {
            a.profiles_dir.clone_from(d);
        }
        a
    }
}

/// Which room's database: its config (default: the demo room) and data directory.
#[derive(clap::Args)]
struct Room {
    /// The room config (default: config/demo-room.toml).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data directory (default: the config's storage.data_dir).
    #[arg(long, global = true)]
    data: Option<PathBuf>,
}

impl Room {
    fn config(&self) -> anyhow::Result<RoomConfig> {
        let file = self.config.clone().unwrap_or_else(demo::config_path);
        Ok(RoomConfig::load(&file)?)
    }

    async fn open(&self) -> anyhow::Result<Controller> {
        Ok(Controller::start(self.config()?, self.data.as_deref()).await?)
    }

    /// The database file, without opening it.
    fn database(&self) -> anyhow::Result<PathBuf> {
        let dir = match &self.data {
            Some(d) => d.clone(),
            None => self.config()?.data_dir,
        };
        Ok(dir.join(stackroom::server::DB_FILE))
    }
}

#[derive(Subcommand)]
enum TokenAction {
    /// Make a token and print its secret (shown this once).
    Create {
        /// viewer, operator, archivist, approver or admin.
        #[arg(long)]
        role: Role,
        /// A name of its own: recorded as the actor of what the token does.
        #[arg(long)]
        name: String,
        /// It expires after this long: `90d` (days) or `12h` (hours); default never.
        #[arg(long, value_parser = parse_expiry)]
        expires: Option<chrono::Duration>,
    },
    /// Every token, live and revoked.
    List,
    /// Revoke the live token of that name.
    Revoke { name: String },
}

#[derive(Subcommand)]
enum LoansAction {
    /// Loans, newest first: id, state, kind, borrower, due, boxes.
    List {
        /// requested, approved, rejected, checked_out, returned, return_refused, cancelled.
        #[arg(long)]
        state: Option<stackroom::loans::LoanState>,
        /// The borrower's name, exactly.
        #[arg(long)]
        borrower: Option<String>,
    },
    /// Loans out past their due day.
    Overdue,
}

#[derive(Subcommand)]
enum AuditAction {
    /// Write the audit trail as CSV (to stdout, or --out FILE).
    Export {
        /// From this day (YYYY-MM-DD, UTC) or moment (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
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
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain: what failed, and why, down to the cause.
            eprintln!("error: {}", stackroom::logging::chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// `stackroom demo --rooms N`: the rooms, the site broker and the site API on `listen`.
#[cfg(feature = "demo")]
async fn site_demo(
    rooms: u32,
    data: &Path,
    listen: SocketAddr,
    time_scale: f64,
) -> anyhow::Result<()> {
    let demo = stackroom::site::demo::start(rooms, data, time_scale).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    say(&format!("site api: http://{}", listener.local_addr()?));
    say(&format!("site token: {}", demo.token));
    say(&format!("site broker: {}", demo.site_broker));
    for room in &demo.rooms {
        say(&format!(
            "room {}: {} (page {}/#token={}, sim {}, mqtt {})",
            room.id, room.api, room.api, room.token, room.sim, room.mqtt
        ));
    }
    let served = serve_site(listener, &demo.site).await;
    demo.shut_down().await;
    served
}

/// Serves the site API on `listener` until Ctrl-C or SIGTERM.
async fn serve_site(
    listener: tokio::net::TcpListener,
    site: &stackroom::site::Site,
) -> anyhow::Result<()> {
    stackroom::http::serve(
        listener,
        site.router(),
        stackroom::http::Limits::default(),
        None,
        stop_signal()?,
    )
    .await
    .context("the site API server failed")
}

/// Ends at Ctrl-C or SIGTERM, saying which came.
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        }
    })
}

#[derive(Subcommand)]
enum SiteAction {
    /// Make a site API token and print it (shown once).
    Token {
        name: String,
        /// viewer (search, locate), operator (retrieve) or admin (the audit trail).
        #[arg(long, default_value = "viewer")]
        role: Role,
    },
    /// Revoke a site API token.
    Revoke { name: String },
    /// Drop the site's replica of a room (after the room's database was restored): the site
    /// takes the room again from the start.
    Resync { room: String },
    /// Write the site broker's mosquitto.conf (a bridge to every room's broker), passwd and
    /// acl into --out; makes the site service's MQTT password.
    BrokerConfig {
        #[arg(long)]
        out: PathBuf,
        /// Port the site broker listens on (default: the config's broker URL's).
        #[arg(long)]
        port: Option<u16>,
        /// Address it listens on (default: all).
        #[arg(long)]
        bind: Option<String>,
        #[command(flatten)]
        tls: ListenerTlsArgs,
    },
}

/// A broker's TLS listener, for `broker-config` and `site broker-config`.
#[derive(clap::Args)]
struct ListenerTlsArgs {
    /// TLS listener: the broker's certificate (PEM). With --tls-key and --tls-ca.
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    tls_ca: Option<PathBuf>,
    /// Clients must present a certificate signed by --tls-ca.
    #[arg(long, requires = "tls_cert")]
    require_client_cert: bool,
}

impl ListenerTlsArgs {
    fn listener_tls(self) -> Option<stackroom::bus::mosquitto::ListenerTls> {
        match (self.tls_cert, self.tls_key, self.tls_ca) {
            (Some(cert), Some(key), Some(ca)) => Some(stackroom::bus::mosquitto::ListenerTls {
                cert,
                key,
                ca,
                require_client_cert: self.require_client_cert,
            }),
            _ => None,
        }
    }
}

async fn site(
    file: &Path,
    listen: Option<SocketAddr>,
    action: Option<SiteAction>,
) -> anyhow::Result<()> {
    use stackroom::site::{self, Site, SiteConfig};
    let config = SiteConfig::load(file)?;
    match action {
        Some(SiteAction::BrokerConfig {
            out,
            port,
            bind,
            tls,
        }) => {
            let listener = stackroom::bus::mosquitto::Listener {
                bind,
                port: port.unwrap_or(config.broker.port),
                tls: tls.listener_tls(),
            };
            for f in site::broker_files(&config, &out, &listener)? {
                println!("wrote {}", f.display());
            }
            println!(
                "the site service's MQTT password is in {}",
                config.secret_path().display()
            );
            Ok(())
        }
        Some(SiteAction::Token { name, role }) => {
            let site = Site::open(config)?;
            println!("{}", site.replica.create_token(&name, role).await?);
            Ok(())
        }
        Some(SiteAction::Resync { room }) => {
            if config.room(&room).is_none() {
                bail!("no room '{room}' in {}", file.display());
            }
            let site = Site::open(config)?;
            site.replica.forget_room(&room).await?;
            println!("the site takes room {room} again from the start");
            Ok(())
        }
        Some(SiteAction::Revoke { name }) => {
            let site = Site::open(config)?;
            site.replica.revoke_token(&name).await?;
            println!("revoked {name}");
            Ok(())
        }
        None => {
            let listen = listen.unwrap_or(config.listen);
            let site = Site::open(config)?;
            let _follower = site.follow().await?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            say(&format!("site api: http://{}", listener.local_addr()?));
            serve_site(listener, &site).await
        }
    }
}

/// `90d` or `12h`: how long until a token expires.
fn parse_expiry(text: &str) -> Result<chrono::Duration, String> {
    let bad = || format!("'{text}': give days or hours, e.g. 90d or 12h");
    let (n, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = n.parse().map_err(|_| bad())?;
    if !(1..=87_600).contains(&n) {
        return Err(bad());
    }
    match unit {
        "d" if n <= 3650 => Ok(chrono::Duration::days(n)),
        "h" => Ok(chrono::Duration::hours(n)),
        _ => Err(bad()),
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Site {
            config,
            listen,
            action,
        } => site(&config, listen, action).await,
        Command::CheckConfig { file } => {
            let config = RoomConfig::load(&file)?;
            print!("{}", config.summary());
            let missing = stackroom::bus::missing(&config);
            if missing.is_empty() {
                Ok(())
            } else {
                Err(anyhow!(missing.join("\n")))
            }
        }
        Command::Init(args) => {
            use std::io::IsTerminal;
            let mut answers = args.answers();
            if args.ask || std::io::stdin().is_terminal() {
                stackroom::init::ask(
                    &mut answers,
                    &mut std::io::stdin().lock(),
                    &mut std::io::stderr(),
                )?;
            }
            answers.complete();
            for line in stackroom::init::write(&answers, &args.out, args.force)? {
                say(&line);
            }
            say(&format!(
                "next: `stackroom check-config {0}`, `stackroom broker-config --config {0} --out DIR` for the site broker, `stackroom token create --config {0} --role admin --name NAME`",
                args.out.display()
            ));
            Ok(())
        }
        Command::BrokerConfig {
            config,
            out,
            port,
            bind,
            tls,
        } => {
            use stackroom::bus::{self, mosquitto};
            let config = RoomConfig::load(&config)?;
            let url = match &config.mqtt {
                stackroom::config::Mqtt::External { url } => {
                    stackroom::config::bus::BrokerUrl::parse(url).ok()
                }
                stackroom::config::Mqtt::Embedded { .. } => None,
            };
            let grants = bus::grants(&config, &config.bus.user);
            let passwords = bus::passwords(&config, &grants, true)?;
            let listener = mosquitto::Listener {
                bind,
                port: port.or(url.map(|u| u.port)).unwrap_or(1883),
                tls: tls.listener_tls(),
            };
            let written = mosquitto::write(&out, &grants, &passwords, &listener)?;
            for f in written {
                println!("wrote {}", f.display());
            }
            let secrets = stackroom::bus::Secrets::of(&config.bus, &config.data_dir);
            for g in grants.iter().filter(|g| !config.bus.is_controller(&g.user)) {
                println!(
                    "{}: user {}, password in {}",
                    g.about,
                    g.user,
                    secrets.path(&g.user).display()
                );
            }
            Ok(())
        }
        #[cfg(feature = "demo")]
        Command::Demo {
            listen,
            sim_control,
            mqtt_listen,
            time_scale,
            data,
            room,
            broker,
            rooms,
        } => {
            if let Some(n) = rooms {
                let data = data.unwrap_or_else(|| PathBuf::from("stackroom-data"));
                return site_demo(n, &data, listen, time_scale).await;
            }
            let mut config = demo::as_room(RoomConfig::load(&demo::config_path())?, &room);
            if let Some(url) = broker {
                stackroom::config::bus::BrokerUrl::parse(&url)
                    .map_err(|e| anyhow!("--broker {url}: {e}"))?;
                config.mqtt = stackroom::config::Mqtt::External { url };
            }
            let controller = Controller::start(config, data.as_deref()).await?;
            let seeded = demo::seed(&controller.locations)
                .await
                .map_err(|e| anyhow!(explain(&e)))?;
            let token = demo::admin_token(&controller.access).await?;
            if seeded > 0 {
                tracing::info!(boxes = seeded, "seeded the demo room");
            }
            let mut controller = controller;
            let settings = SimSettings {
                time_scale,
                ..SimSettings::default()
            };
            let (simulator, broker) =
                sim::simulate(&mut controller, settings, mqtt_listen, sim_control).await?;
            let publisher = controller.publish(broker.endpoint());
            let banner = Banner {
                sim: format!("http://{}", simulator.control),
                mqtt: broker.url(),
                token,
                devices: sim::describe(&simulator),
            };
            serve(controller, listen, publisher, Some(banner)).await
        }
        Command::Serve {
            config,
            listen,
            data,
        } => {
            let config = RoomConfig::load(&config)?;
            for w in config.warnings() {
                tracing::warn!(warning = %w, "config");
            }
            let listen = listen.unwrap_or(config.listen);
            let mut controller = Controller::start(config, data.as_deref()).await?;
            let config = controller.config.clone();
            // The room's broker: the embedded one (started here, for the life of the
            // process) or the site's.
            let endpoint = match &config.mqtt {
                #[cfg(feature = "demo")]
                stackroom::config::Mqtt::Embedded { listen } => {
                    stackroom::mqtt::EmbeddedBroker::start(*listen, &config)?.endpoint
                }
                #[cfg(not(feature = "demo"))]
                stackroom::config::Mqtt::Embedded { .. } => {
                    bail!(
                        "this build has no embedded MQTT broker (it was built without \
                         the `demo` feature): set mqtt.broker to the site's broker"
                    );
                }
                stackroom::config::Mqtt::External { .. } => stackroom::bus::endpoint(&config)?,
            };
            controller
                .start_devices(&Wiring {
                    tcp_addresses: Default::default(),
                    serial_paths: Default::default(),
                    mqtt: Some(endpoint.clone()),
                })
                .await?;
            let publisher = controller.publish(&endpoint);
            serve(controller, listen, publisher, None).await
        }
        Command::Sweep {
            scope,
            apply,
            dwell_ms,
            api,
            report,
            token,
            token_file,
        } => {
            let token = match (token, token_file) {
                (Some(t), _) => t,
                (None, Some(file)) => std::fs::read_to_string(&file)
                    .with_context(|| format!("--token-file {}", file.display()))?
                    .trim()
                    .to_string(),
                (None, None) => bail!("give --token-file or STACKROOM_TOKEN"),
            };
            stackroom::cli_sweep::run(stackroom::cli_sweep::Args {
                api,
                token,
                scope: stackroom::cli_sweep::parse_scope(&scope)?,
                apply,
                dwell_ms,
                report,
            })
            .await
        }
        Command::Token { action, room } => {
            let controller = room.open().await?;
            match action {
                TokenAction::Create {
                    role,
                    name,
                    expires,
                } => {
                    let (secret, view) = controller
                        .access
                        .create(&name, role, "cli", expires)
                        .await?;
                    eprintln!(
                        "token '{}' ({}): keep it, it is not shown again",
                        view.name, view.role
                    );
                    say(&secret);
                }
                TokenAction::List => {
                    for t in controller.access.list().await? {
                        let state = match (t.revoked_at, t.expires_at) {
                            (Some(at), _) => format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
                            (None, Some(at)) if at <= chrono::Utc::now() => {
                                format!("expired {}", at.format("%Y-%m-%d %H:%M"))
                            }
                            (None, Some(at)) => {
                                format!("live until {}", at.format("%Y-%m-%d %H:%M"))
                            }
                            (None, None) => "live".into(),
                        };
                        say(&format!(
                            "{}\t{}\t{}\tcreated {}",
                            t.name,
                            t.role,
                            state,
                            t.created_at.format("%Y-%m-%d %H:%M")
                        ));
                    }
                }
                TokenAction::Revoke { name } => {
                    controller.access.revoke(&name, "cli").await?;
                    eprintln!("token '{name}' revoked");
                }
            }
            Ok(())
        }
        Command::Labels {
            range,
            shelves,
            boxes,
            out,
            room,
        } => {
            let controller = room.open().await?;
            let language = controller.config.language;
            let split = |s: String| {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect::<Vec<_>>()
            };
            let (rows, what) = match (range, shelves, boxes) {
                (Some(r), None, None) => (
                    stackroom::labels::boxes_on(&controller.locations, Some(r), Vec::new()).await?,
                    format!("labels of range {r}"),
                ),
                (None, Some(list), None) => {
                    let list = split(list);
                    let what = format!("labels of shelves {}", list.join(" "));
                    (
                        stackroom::labels::boxes_on(&controller.locations, None, list).await?,
                        what,
                    )
                }
                (None, None, Some(list)) => {
                    let mut rows = Vec::new();
                    for a in split(list) {
                        let b = controller.locations.get_box(&a).await?;
                        rows.push((b.archive_no, b.title, b.location.map(|l| l.shelf.address)));
                    }
                    let what = format!("labels of {} box(es)", rows.len());
                    (rows, what)
                }
                _ => bail!("name one of --range, --shelves or --boxes"),
            };
            if rows.is_empty() {
                bail!("no boxes there to print labels for");
            }
            let labels: Vec<stackroom::labels::Label> = rows
                .into_iter()
                .map(|(a, t, s)| stackroom::labels::label(language, a, t, s))
                .collect();
            let size = controller.config.labels;
            let svg = out.extension().is_some_and(|e| e == "svg");
            let body = if svg {
                stackroom::labels::svg(&labels, size)?.into_bytes()
            } else {
                stackroom::labels::pdf(&labels, size)?
            };
            std::fs::write(&out, body).with_context(|| out.display().to_string())?;
            controller
                .audit
                .record(
                    stackroom::audit::NewEntry::new(
                        "cli",
                        "print",
                        what,
                        format!(
                            "{} label(s), {}",
                            labels.len(),
                            if svg { "svg" } else { "pdf" }
                        ),
                    )
                    .detail(out.display().to_string()),
                )
                .await;
            eprintln!("{} label(s) written to {}", labels.len(), out.display());
            Ok(())
        }
        Command::Loans { action, room } => {
            let controller = room.open().await?;
            let filter = match action {
                LoansAction::List { state, borrower } => stackroom::loans::LoanFilter {
                    state,
                    borrower,
                    limit: 1000,
                    ..Default::default()
                },
                LoansAction::Overdue => stackroom::loans::LoanFilter {
                    overdue: true,
                    limit: 1000,
                    ..Default::default()
                },
            };
            let loans = controller.loans.list(filter).await?;
            for l in &loans {
                let boxes: Vec<&str> = l.boxes.iter().map(|b| b.archive_no.as_str()).collect();
                say(&format!(
                    "{}\t{}\t{}\t{}{}\tdue {}{}\t{}",
                    l.id,
                    l.state,
                    l.kind.as_str(),
                    l.borrower.name,
                    if l.borrower.department.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", l.borrower.department)
                    },
                    l.due,
                    if l.overdue { " OVERDUE" } else { "" },
                    boxes.join(" ")
                ));
            }
            eprintln!("{} loan(s)", loans.len());
            Ok(())
        }
        Command::Audit {
            action: AuditAction::Export { since, out },
            room,
        } => {
            let controller = room.open().await?;
            let since = since
                .map(|t| {
                    chrono::DateTime::parse_from_rfc3339(&t)
                        .map(|t| t.to_utc())
                        .or_else(|_| {
                            chrono::NaiveDate::parse_from_str(&t, "%Y-%m-%d")
                                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
                        })
                        .map_err(|_| {
                            anyhow!("--since '{t}': a day (2026-03-01) or an RFC 3339 time")
                        })
                })
                .transpose()?;
            let filter = stackroom::audit::Filter {
                since,
                ..Default::default()
            };
            let n = match out {
                Some(path) => {
                    let file =
                        std::fs::File::create(&path).with_context(|| path.display().to_string())?;
                    controller
                        .audit
                        .export_csv(&filter, std::io::BufWriter::new(file))?
                }
                None => controller
                    .audit
                    .export_csv(&filter, std::io::stdout().lock())?,
            };
            controller
                .audit
                .record(stackroom::audit::NewEntry::new(
                    "cli",
                    "export",
                    "audit trail (CSV)",
                    format!("{n} entries"),
                ))
                .await;
            eprintln!("{n} audit entries");
            Ok(())
        }
        Command::Backup { file, force, room } => {
            let controller = room.open().await?;
            let taken = stackroom::backup::take(controller.locations.store(), &file, force).await?;
            controller
                .audit
                .record(stackroom::audit::NewEntry::new(
                    "cli",
                    "backup",
                    taken.file.display().to_string(),
                    "verified",
                ))
                .await;
            let m = &taken.manifest;
            eprintln!(
                "backed up {} pages ({} boxes) to {} in {:.1} s, verified in {:.1} s; manifest {}",
                taken.pages,
                m.rows("boxes"),
                taken.file.display(),
                taken.copied_in.as_secs_f64(),
                taken.checked_in.as_secs_f64(),
                stackroom::backup::manifest_path(&taken.file).display()
            );
            Ok(())
        }
        Command::VerifyBackup { file } => {
            let m = tokio::task::spawn_blocking(move || stackroom::backup::verify(&file)).await??;
            say(&format!(
                "ok: taken {} of {} (schema {}), {} boxes, {} tables checked",
                m.taken_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                m.source.display(),
                m.schema_version,
                m.rows("boxes"),
                m.tables.len()
            ));
            Ok(())
        }
        Command::Restore { backup, room } => {
            let db = room.database()?;
            let target = db.clone();
            let restored =
                tokio::task::spawn_blocking(move || stackroom::backup::restore(&backup, &target))
                    .await??;
            let m = &restored.manifest;
            say(&format!(
                "restored {} as {}: the backup of {} taken {} (schema {}{}), {} boxes, {} bindings, {} audit entries",
                m.files.first().map_or("", |f| f.name.as_str()),
                db.display(),
                m.source.display(),
                m.taken_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                restored.schema_version,
                if restored.schema_version < stackroom::store::schema_version() {
                    format!(", migrated to {}", stackroom::store::schema_version())
                } else {
                    String::new()
                },
                m.rows("boxes"),
                m.rows("bindings"),
                m.rows("audit")
            ));
            match &restored.aside {
                Some(dir) => say(&format!(
                    "the database there before is in {}",
                    dir.display()
                )),
                None => say("there was no database there before"),
            }
            Ok(())
        }
        Command::Import { file, config, data } => {
            let config = RoomConfig::load(&config)?;
            let input = std::fs::File::open(&file)
                .with_context(|| format!("{}: cannot open it", file.display()))?;
            let controller = Controller::start(config, data.as_deref()).await?;
            let reason = format!("import of {}", file_name(&file));
            let summary = controller
                .locations
                .import_csv(std::io::BufReader::new(input), "cli", &reason)
                .await
                .map_err(|e| anyhow!(explain(&e)))?;
            // This program ends now: no checkpoint would come to cut the WAL back.
            controller.locations.store().truncate_wal().await?;
            println!(
                "imported {} boxes ({} on shelves) from {}",
                summary.boxes,
                summary.bound,
                file.display()
            );
            Ok(())
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// An error with the rows or moves at fault, one per line.
fn explain(e: &LocationError) -> String {
    let mut out = e.to_string();
    if let LocationError::Import(rows) = e {
        for row in rows {
            let field = row
                .field
                .as_deref()
                .map(|f| format!(" [{f}]"))
                .unwrap_or_default();
            out += &format!("\n  line {}{field}: {}", row.line, row.message);
        }
    }
    out
}

/// One line on stdout for whoever started us; a closed stdout is not our failure.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// What the demo prints beside the API's address.
struct Banner {
    sim: String,
    mqtt: String,
    token: String,
    /// Where each simulated device is.
    devices: Vec<String>,
}

/// Serves until Ctrl-C or SIGTERM, then shuts down in order: the API closes, the ranges
/// stop, the event publisher says offline, the writer commits what is queued.
async fn serve(
    controller: Controller,
    listen: SocketAddr,
    publisher: stackroom::mqtt::Publisher,
    demo: Option<Banner>,
) -> anyhow::Result<()> {
    let listener = Controller::listen(listen).await?;
    let addr = listener.local_addr()?;
    say(&format!("api: http://{addr}"));
    if let Some(banner) = demo {
        say(&format!("sim: {}", banner.sim));
        say(&format!("mqtt: {}", banner.mqtt));
        say(&format!("token: {}", banner.token));
        // The token rides in the fragment, which the browser keeps to itself.
        say(&format!("page: http://{addr}/#token={}", banner.token));
        for line in banner.devices {
            tracing::info!("{line}");
        }
    }
    let _ = std::io::stdout().flush();
    tracing::info!(%addr, db = %controller.locations.store().path().display(), "serving");
    let served = controller.serve(listener, stop_signal()?).await;
    controller.shut_down().await;
    publisher.close().await;
    tracing::info!("stopped");
    served.context("the API server failed")
}
