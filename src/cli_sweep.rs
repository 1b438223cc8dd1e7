//! `stackroom sweep`: runs an inventory sweep on a running controller through its API,
//! with a progress bar, and prints the summary (Ctrl-C cancels the sweep).

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::api::CLI_AGENT;

/// `--scope`: `room`, `range=R` or `shelves=R1-C1-R-S1-L1,R1-C1-R-S1-L2`.
pub fn parse_scope(text: &str) -> anyhow::Result<Value> {
    let bad = || {
        anyhow!("--scope '{text}': say room, range=R or shelves=ADDRESS,ADDRESS,... (e.g. range=1)")
    };
    match text.split_once('=') {
        None if text == "room" => Ok(json!({"room": true})),
        Some(("range", r)) => Ok(json!({"range": r.parse::<u16>().map_err(|_| bad())?})),
        Some(("shelves", list)) => {
            let shelves: Vec<&str> = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if shelves.is_empty() {
                return Err(bad());
            }
            Ok(json!({"shelves": shelves}))
        }
        _ => Err(bad()),
    }
}

/// What `stackroom sweep` was asked.
pub struct Args {
    pub api: String,
    pub token: String,
    pub scope: Value,
    pub apply: String,
    pub dwell_ms: Option<u64>,
    pub report: Option<std::path::PathBuf>,
}

fn problem(v: &Value) -> String {
    v["detail"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// Runs the sweep.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let api = args.api.trim_end_matches('/').to_string();
    let mut headers = reqwest::header::HeaderMap::new();
    let bearer = format!("Bearer {}", args.token.trim())
        .parse()
        .map_err(|_| anyhow!("--token: not a token (srt_ and 64 hex digits)"))?;
    headers.insert(reqwest::header::AUTHORIZATION, bearer);
    let client = reqwest::Client::builder()
        .user_agent(format!("{CLI_AGENT}/{}", env!("CARGO_PKG_VERSION")))
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .build()?;
    let unreachable = || format!("cannot reach the controller at {api}");
    let mut body = json!({"scope": args.scope, "apply": args.apply});
    if let Some(d) = args.dwell_ms {
        body["dwell_ms"] = json!(d);
    }
    let r = client
        .post(format!("{api}/api/v1/sweeps"))
        .json(&body)
        .send()
        .await
        .with_context(unreachable)?;
    let status = r.status();
    let started: Value = r.json().await.with_context(unreachable)?;
    if status.as_u16() != 202 {
        bail!("the sweep did not start: {}", problem(&started));
    }
    let id = started["id"]
        .as_i64()
        .context("the controller gave no sweep id")?;
    let total = started["progress"]["antennas"].as_u64().unwrap_or(0);
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "sweep {prefix} [{bar:40}] {pos}/{len} antennas, {msg} ({elapsed}, ~{eta} left)",
        )?
        .progress_chars("=> "),
    );
    bar.set_prefix(id.to_string());
    let url = format!("{api}/api/v1/sweeps/{id}");
    let view = loop {
        let v: Value = tokio::select! {
            r = async { client.get(&url).send().await?.json::<Value>().await } => r.with_context(unreachable)?,
            _ = tokio::signal::ctrl_c() => {
                bar.abandon_with_message("cancelling");
                let _ = client.delete(&url).send().await;
                bail!("sweep {id} cancelled");
            }
        };
        bar.set_position(v["progress"]["done"].as_u64().unwrap_or(0));
        bar.set_message(format!(
            "{} reads",
            v["progress"]["reads"].as_u64().unwrap_or(0)
        ));
        if v["state"] != "running" {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    bar.finish();
    let s = &view["summary"];
    println!(
        "sweep {id} {}: {} present, {} misplaced, {} missing, {} not read, {} unknown; {} re-bound",
        view["state"].as_str().unwrap_or("?"),
        s["present"],
        s["misplaced"],
        s["missing"],
        s["not_read"],
        s["unknown"],
        view["applied"]
    );
    println!("report: {url}/report (?format=csv)");
    if view["state"] != "done" {
        bail!(
            "sweep {id} ended {}: {}",
            view["state"].as_str().unwrap_or("?"),
            view["note"].as_str().unwrap_or("")
        );
    }
    if let Some(path) = args.report {
        let csv = client
            .get(format!("{url}/report?format=csv"))
            .send()
            .await
            .with_context(unreachable)?
            .text()
            .await
            .with_context(unreachable)?;
        std::fs::write(&path, csv).with_context(|| path.display().to_string())?;
        println!("report written to {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_said_shortly() {
        assert_eq!(parse_scope("room").unwrap(), json!({"room": true}));
        assert_eq!(parse_scope("range=2").unwrap(), json!({"range": 2}));
        assert_eq!(
            parse_scope("shelves=R1-C1-R-S1-L1, R1-C1-R-S1-L2").unwrap(),
            json!({"shelves": ["R1-C1-R-S1-L1", "R1-C1-R-S1-L2"]})
        );
        for bad in ["", "range", "range=x", "shelves=", "rooms", "floor=1"] {
            assert!(
                parse_scope(bad)
                    .unwrap_err()
                    .to_string()
                    .contains("--scope"),
                "{bad}"
            );
        }
    }
}
