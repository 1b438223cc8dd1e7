//! Running the real `stackroom demo` for integration tests.
#![allow(dead_code)]

pub mod api;
pub mod mosquitto;
pub mod tools;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_stackroom");

/// A running `stackroom demo`, killed when dropped.
pub struct Demo {
    child: Child,
    pub base: String,
    pub sim: String,
    pub mqtt: String,
    /// The admin token the demo printed.
    pub token: String,
    /// The staff page's address with the token in its fragment.
    pub page: String,
    /// The data directory (the bus's passwords are in `mqtt-secrets` there).
    pub data: std::path::PathBuf,
    _stdout: BufReader<ChildStdout>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the demo on free ports with its data in `data`, and reads the lines it prints.
pub fn start_demo(data: &Path, extra: &[&str]) -> Demo {
    start_demo_with(data, extra, None)
}

/// [`start_demo`] with at most `max_files` open file descriptors (`ulimit -n`).
pub fn start_demo_with(data: &Path, extra: &[&str], max_files: Option<u32>) -> Demo {
    let mut command = match max_files {
        None => Command::new(BIN),
        Some(n) => {
            let mut c = Command::new("sh");
            c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), BIN]);
            c
        }
    };
    let mut child = command
        .args(["demo", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start stackroom demo");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut read = |prefix: &str| {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected a line '{prefix}URL', got {line:?}"))
            .to_string();
        assert!(!url.ends_with(":0"), "the real port is printed: {url}");
        url
    };
    let base = read("api: ");
    let sim = read("sim: ");
    let mqtt = read("mqtt: ");
    let token = read("token: ");
    assert!(token.starts_with("srt_"), "a token: {token}");
    let page = read("page: ");
    TOKENS.lock().unwrap().insert(base.clone(), token.clone());
    Demo {
        child,
        base,
        sim,
        mqtt,
        token,
        page,
        data: data.to_path_buf(),
        _stdout: stdout,
    }
}

impl Demo {
    /// MQTT options for a client of the demo's broker that logs in as one of the
    /// controller's connections (`stackroom.{name}`), with the password the demo made.
    pub fn mqtt_options(&self, name: &str) -> rumqttc::MqttOptions {
        let port: u16 = self.mqtt.rsplit(':').next().unwrap().parse().unwrap();
        let password =
            std::fs::read_to_string(self.data.join("mqtt-secrets").join("stackroom")).unwrap();
        stackroom::bus::Endpoint::plain("127.0.0.1", port, "stackroom", password.trim())
            .options(Some(name))
    }
}

/// The token of each running demo, by its API base URL.
static TOKENS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, String>>> =
    std::sync::LazyLock::new(Default::default);

/// A client that sends the admin token of the demo at `base` (none for other servers).
pub fn api_client(base: &str) -> reqwest::Client {
    match TOKENS.lock().unwrap().get(base) {
        Some(token) => bearer_client(token),
        None => client(),
    }
}

/// A client that sends `token` with every request.
pub fn bearer_client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()
        .unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// GET: status, content type, JSON body (Null when not JSON).
pub async fn get(base: &str, path: &str) -> (u16, String, Value) {
    let r = api_client(base)
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ctype, r.json().await.unwrap_or(Value::Null))
}

/// POST without a body: status and JSON body.
pub async fn post(base: &str, path: &str) -> (u16, Value) {
    let r = api_client(base)
        .post(format!("{base}{path}"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// PUT a raw body: status.
pub async fn put(base: &str, path: &str, body: &str) -> u16 {
    api_client(base)
        .put(format!("{base}{path}"))
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Polls `path` until `done` holds (at most `seconds`), returning the last body.
pub async fn wait_for(
    base: &str,
    path: &str,
    seconds: u64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        let (_, _, v) = get(base, path).await;
        if done(&v) || std::time::Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Makes a token of `role` through the API of the demo at `base`; its secret.
pub async fn token(base: &str, name: &str, role: &str) -> String {
    let r = api_client(base)
        .post(format!("{base}/api/v1/tokens"))
        .json(&serde_json::json!({"name": name, "role": role}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["role"], role);
    body["secret"].as_str().unwrap().to_string()
}

/// POST a JSON body: status, headers' Location, JSON body.
pub async fn post_json(base: &str, path: &str, body: &Value) -> (u16, Option<String>, Value) {
    let r = api_client(base)
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    (status, location, r.json().await.unwrap_or(Value::Null))
}

/// DELETE: status and JSON body.
pub async fn delete(base: &str, path: &str) -> (u16, Value) {
    let r = api_client(base)
        .delete(format!("{base}{path}"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}
