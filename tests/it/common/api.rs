//! Small HTTP helpers the tests share with the benchmarks (`benches/site.rs` takes this
//! file in with `#[path]`): a GET's JSON, and a demo room's address and token as
//! `stackroom demo --rooms N` prints them.

/// GET `url` with the bearer `token`: its JSON.
pub async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A room's API address and token from its line of the site demo's output:
/// `room stack-1: http://ADDR (page http://ADDR/#token=TOKEN, …`.
pub fn demo_room(line: &str, room: &str) -> (String, String) {
    let rest = line
        .strip_prefix(&format!("room {room}: "))
        .unwrap_or_else(|| panic!("a line of room {room}: {line}"));
    let base = rest.split_whitespace().next().unwrap().to_string();
    let token = rest
        .split("#token=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    (base, token)
}
