//! RFID benchmark: `cargo bench --bench rfid`.
//!
//! The demo room's 5,400 seeded boxes on their shelves, one antenna per shelf (1,200),
//! read by hw-sim's radio model with its default noise (95 % own-shelf reads around −52 dBm,
//! 30 % cross-reads from each neighbouring shelf 12 dB weaker), `ROUNDS` inventory rounds
//! per antenna, seed 1. On the same reads:
//! - placement accuracy of the pipeline's decision against "last read wins" and "single
//!   strongest read";
//! - pipeline throughput on one core, reads per second.

use std::collections::HashMap;
use std::time::Instant;

use hw_sim::rf::{Radio, RfParams};
use hw_sim::world::World;
use stackroom::config::RoomConfig;
use stackroom::demo;
use stackroom::rfid::pipeline::{Pipeline, Settings, TagRead, baseline};
use stackroom::shelf::ShelfAddress;

const ROUNDS: u64 = 5;

fn main() {
    let config = RoomConfig::load(&demo::config_path()).unwrap();
    let shelves: Vec<ShelfAddress> = config.layout.shelves().collect();
    let specs = stackroom::sim::shelf_specs(&config.layout);
    let mut world = World::new(specs);
    let csv = demo::seed_csv(&shelves, demo::SEED_BOXES);
    let placement = stackroom::sim::placement_csv(csv.as_bytes()).unwrap();
    let mut truth: HashMap<String, ShelfAddress> = HashMap::new();
    for p in &placement {
        world
            .place_box(&p.archive_no, &p.epc, p.shelf.as_deref())
            .unwrap();
        if let Some(s) = &p.shelf {
            truth.insert(p.epc.to_ascii_uppercase(), s.parse().unwrap());
        }
    }
    let mut radio = Radio::new(1, RfParams::default());
    let mut reads = Vec::new();
    for round in 0..ROUNDS {
        for (i, _) in shelves.iter().enumerate() {
            let port = i as u16 + 1;
            for o in radio.inventory(&world, i, port) {
                reads.push(TagRead {
                    reader: "bench".into(),
                    port,
                    epc: o.epc,
                    rssi_dbm: o.rssi_dbm as f64,
                    at_ms: round * 1000 + i as u64 / 10,
                    frequency_khz: Some(o.frequency_khz),
                    phase_deg: Some(o.phase_deg as f32),
                    count: 1,
                });
            }
        }
    }
    let map = || {
        shelves
            .iter()
            .enumerate()
            .map(|(i, s)| ("bench".to_string(), i as u16 + 1, *s))
    };
    let port_shelf: HashMap<u16, ShelfAddress> = map().map(|(_, p, s)| (p, s)).collect();

    let mut pipeline = Pipeline::new(map(), Settings::default());
    for r in &reads {
        pipeline.push(r);
    }
    let score = |decide: &dyn Fn(&str) -> Option<ShelfAddress>| {
        let mut right = 0;
        let mut unseen = 0;
        for (epc, shelf) in &truth {
            match decide(epc) {
                Some(s) if s == *shelf => right += 1,
                Some(_) => {}
                None => unseen += 1,
            }
        }
        (right as f64 / truth.len() as f64 * 100.0, unseen)
    };
    let (ours, unseen) = score(&|epc| pipeline.decide(epc, None).map(|d| d.shelf));
    let last = baseline::last_read(&reads);
    let (last_acc, _) = score(&|epc| last.get(epc).map(|(_, p)| port_shelf[p]));
    let strongest = baseline::strongest_read(&reads);
    let (strong_acc, _) = score(&|epc| strongest.get(epc).map(|(_, p)| port_shelf[p]));
    println!(
        "reads: {} from {} tags on {} antennas, {ROUNDS} rounds each; {unseen} tags never heard",
        reads.len(),
        truth.len(),
        shelves.len()
    );
    println!("| placement, pipeline (power-weighted evidence) | {ours:.2} % | |");
    println!("| placement, baseline: last read wins | {last_acc:.2} % | |");
    println!("| placement, baseline: single strongest read | {strong_acc:.2} % | |");

    // Throughput: the same reads, again and again, through a fresh pipeline.
    let passes = 20;
    let start = Instant::now();
    let mut pipeline = Pipeline::new(map(), Settings::default());
    for pass in 0..passes {
        for r in &reads {
            let mut r = r.clone();
            r.at_ms += pass * 10_000;
            pipeline.push(&r);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let n = reads.len() as f64 * passes as f64;
    println!(
        "| pipeline throughput, one core (push incl. a clone of each read) | {:.0} reads/s | {} reads in {:.2} s |",
        n / secs,
        n,
        secs
    );
}
