//! Load benchmark: `cargo bench --bench load` (`BOXES=N` for another size, default
//! 1,000,000; `SECONDS=S` per phase, default 20; `CLIENTS=C`, default 32).
//!
//! The demo room (its 5,400 seeded boxes on shelves) plus enough boxes registered without
//! a shelf to make `BOXES`, the whole controller as `stackroom demo` runs it (simulated
//! readers and shelving, the API on loopback with access control). C clients, each with
//! its own keep-alive connection, ask again and again: the location of a box on a shelf,
//! or a search by a title word (each word is in a sixth of the boxes). Each kind with
//! nothing else going on (the baseline), and while a sweep of the whole room runs. Per
//! phase: requests per second, latency p50 / p99 / max, and every answer that was not 200
//! (there must be none).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::env;
use stackroom::access::Role;
use stackroom::config::RoomConfig;
use stackroom::config::{Apply, Scope};
use stackroom::demo;
use stackroom::rfid::sweep::SweepRequest;
use stackroom::server::Controller;
use stackroom::sim::{self, SimSettings};

const WORDS: [&str; 6] = ["合同", "contract", "电费", "customer", "用电", "file"];

#[tokio::main]
async fn main() {
    let boxes = env("BOXES", 1_000_000);
    let seconds = env("SECONDS", 20);
    let clients = env("CLIENTS", 32);
    let data = tempfile::tempdir().unwrap();
    let config = RoomConfig::load(&demo::config_path()).unwrap();
    let mut controller = Controller::start(config, Some(data.path())).await.unwrap();
    demo::seed(&controller.locations).await.unwrap();
    let extra = boxes.saturating_sub(demo::SEED_BOXES as u64);
    let t = Instant::now();
    let mut csv = String::from("archive_no,epc,title\n");
    for i in 0..extra {
        let (company, rest) = (600 + i / (999 * 99_999), i % (999 * 99_999));
        let (cabinet, seq) = (rest / 99_999 + 1, rest % 99_999 + 1);
        let word = WORDS[(i % WORDS.len() as u64) as usize];
        csv +=
            &format!("{company:04}-L-{cabinet:03}-{seq:05},E2806666{i:016X},{word} 客户档案 {i}\n");
    }
    controller
        .locations
        .import_csv(
            std::io::Cursor::new(csv.into_bytes()),
            "bench",
            "load bench",
        )
        .await
        .unwrap();
    let total = controller.locations.box_count().await.unwrap();
    eprintln!("{total} boxes ready in {:.0} s", t.elapsed().as_secs_f64());

    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let (_simulator, _broker) = sim::simulate(&mut controller, SimSettings::default(), any, any)
        .await
        .unwrap();
    let (token, _) = controller
        .access
        .create("load", Role::Viewer, "bench", None)
        .await
        .unwrap();
    let listener = Controller::listen(any).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = controller.clone();
    tokio::spawn(async move { server.serve(listener, std::future::pending()).await });
    tokio::time::sleep(Duration::from_secs(1)).await;

    println!("| requests | while | clients | requests/s | p50 | p99 | max | not 200 |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for kind in ["locate", "search"] {
        phase(kind, "nothing else", &base, &token, clients, seconds).await;
    }
    let rfid = controller.rfid.clone().unwrap();
    let sweep = rfid
        .sweeps
        .start(
            SweepRequest {
                scope: Scope::Room(true),
                apply: Apply::Report,
                dwell_ms: None,
            },
            "bench",
        )
        .await
        .unwrap();
    for kind in ["locate", "search"] {
        phase(kind, "a room sweep runs", &base, &token, clients, seconds).await;
    }
    let view = rfid.sweeps.get(sweep.id).await.unwrap();
    eprintln!(
        "sweep {}: {:?}, {} of {} antennas done during the phase",
        view.id, view.state, view.progress.done, view.progress.antennas
    );
    rfid.sweeps.cancel(sweep.id).await.ok();
}

async fn phase(kind: &str, name: &str, base: &str, token: &str, clients: u64, seconds: u64) {
    let locate = kind == "locate";
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let start = Instant::now();
    for c in 0..clients {
        let (stop, errors) = (stop.clone(), errors.clone());
        let (base, token) = (base.to_string(), token.to_string());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let mut latencies = Vec::new();
            let mut i = c * 7919;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let url = if locate {
                    // A seeded box: series of 60, numbered from 1.
                    let series = i % 90;
                    format!(
                        "{base}/api/v1/boxes/0451-{}-{:03}-{:05}/location",
                        if series < 45 { "H" } else { "L" },
                        series % 45 + 1,
                        i % 60 + 1
                    )
                } else {
                    let word = WORDS[(i % WORDS.len() as u64) as usize];
                    format!("{base}/api/v1/boxes?q={word}&limit=20")
                };
                let t = Instant::now();
                match client.get(&url).bearer_auth(&token).send().await {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                    }
                    Ok(r) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("{url}: {}", r.status());
                        }
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("{url}: {e}");
                        }
                    }
                }
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let p = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize];
    println!(
        "| {kind} | {name} | {clients} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {} of {} |",
        all.len() as f64 / secs,
        p(0.5),
        p(0.99),
        all[all.len() - 1],
        errors.load(Ordering::Relaxed),
        all.len()
    );
}
