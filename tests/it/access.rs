//! Access control and the audit trail, through the real demo: every route needs a token
//! of the right role, refusals are problems, changes and motions are recorded.

use crate::common;

use std::time::{Duration, Instant};

use common::{BIN, Demo, api_client, get, start_demo, wait_for};
use serde_json::{Value, json};

fn demo(data: &tempfile::TempDir) -> Demo {
    start_demo(data.path(), &["--time-scale", "10"])
}

/// Makes a token of `role` through the demo's API; its secret.
async fn token(d: &Demo, name: &str, role: &str) -> String {
    common::token(&d.base, name, role).await
}

/// Status of `method path` with `token` (none: no Authorization header).
async fn status(d: &Demo, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("{}{path}", d.base);
    let mut req = match method {
        "get" => c.get(url),
        "post" => c.post(url),
        "put" => c.put(url),
        "patch" => c.patch(url),
        "delete" => c.delete(url),
        other => panic!("{other}"),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if method != "get" && method != "delete" {
        req = req.header("content-type", "application/json").body("{}");
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    if path.ends_with("/events") && status == 200 {
        // The event stream never ends: its status is the answer.
        return (status, Value::Null);
    }
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Every route of the OpenAPI document, with its parameters filled in.
async fn routes(d: &Demo) -> Vec<(String, String)> {
    let (_, _, doc) = get(&d.base, "/api/v1/openapi.json").await;
    let mut out = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        let path = path
            .replace("{range}", "1")
            .replace("{aisle}", "2")
            .replace("{archive_no}", "0451-H-001-00001")
            .replace("{id}", "999")
            .replace("{epc}", "E28011700000000000000001")
            .replace("{name}", "nobody")
            .replace("{operation}", "op-999");
        for method in methods.as_object().unwrap().keys() {
            out.push((method.clone(), path.clone()));
        }
    }
    assert!(out.len() > 30, "{out:?}");
    out
}

/// The role each route needs, as the README documents it.
fn needs(method: &str, path: &str) -> &'static str {
    match (method, path) {
        (_, "/api/v1/health") => "none",
        (_, p)
            if p.starts_with("/api/v1/tokens")
                || p.starts_with("/api/v1/audit")
                || p.starts_with("/api/v1/lookups") =>
        {
            "admin"
        }
        (_, p) if p.ends_with("/label") || p == "/api/v1/labels" => "archivist",
        ("post", p) if p.ends_with("/approve") && p.starts_with("/api/v1/disposals") => "approver",
        ("post", p) if p.ends_with("/reject") && p.starts_with("/api/v1/disposals") => "approver",
        (_, p)
            if p.starts_with("/api/v1/disposals")
                || p.starts_with("/api/v1/transfers")
                || p == "/api/v1/appraisal"
                || p == "/api/v1/register" =>
        {
            "archivist"
        }
        ("post", p) if p.ends_with("/contents") => "archivist",
        ("get", _) | ("post", "/api/v1/events/ticket") => "viewer",
        ("post" | "delete", "/api/v1/session") => "viewer",
        ("post", p)
            if p.ends_with("/open") || p.ends_with("/close") || p.ends_with("/ventilate") =>
        {
            "operator"
        }
        ("post", p) if p.ends_with("/stop") || p.ends_with("/retrieve") => "operator",
        ("post", p) if p.starts_with("/api/v1/alarms/") && p.ends_with("/ack") => "operator",
        ("post", p) if p.starts_with("/api/v1/loans") && p.ends_with("/settle") => "archivist",
        ("post", p) if p.starts_with("/api/v1/loans") => "operator",
        ("post", "/api/v1/sweeps") | ("delete", "/api/v1/sweeps/999") => "operator",
        ("post", "/api/v1/boxes" | "/api/v1/bindings/moves" | "/api/v1/import/boxes") => {
            "archivist"
        }
        ("put" | "delete", p) if p.ends_with("/binding") || p.ends_with("/place") => "archivist",
        ("patch", p) if p.starts_with("/api/v1/boxes/") => "archivist",
        _ => "admin",
    }
}

const ROLES: [&str; 5] = ["viewer", "operator", "archivist", "approver", "admin"];

#[tokio::test]
async fn every_route_needs_a_token_of_the_right_role() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    let mut tokens = Vec::new();
    for role in ROLES {
        tokens.push((role, token(&d, &format!("t-{role}"), role).await));
    }
    for (method, path) in routes(&d).await {
        let need = needs(&method, &path);
        let (code, body) = status(&d, &method, &path, None).await;
        if need == "none" {
            assert_eq!(code, 200, "{method} {path}");
            continue;
        }
        assert_eq!(code, 401, "{method} {path} without a token: {body}");
        assert_eq!(body["type"], "urn:stackroom:unauthorized");
        let (code, _) = status(&d, &method, &path, Some("srt_0000")).await;
        assert_eq!(code, 401, "{method} {path} with a made-up token");
        let rank = ROLES.iter().position(|r| *r == need).unwrap();
        for (i, (role, secret)) in tokens.iter().enumerate() {
            let (code, body) = status(&d, &method, &path, Some(secret)).await;
            if i < rank {
                assert_eq!(code, 403, "{method} {path} as {role}: {body}");
                assert_eq!(body["type"], "urn:stackroom:forbidden");
                assert!(body["detail"].as_str().unwrap().contains(need), "{body}");
            } else {
                assert!(
                    ![401, 403].contains(&code),
                    "{method} {path} as {role}: {code} {body}"
                );
            }
        }
    }
    // A re-binding sweep needs an archivist.
    let operator = &tokens[1].1;
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/sweeps", d.base))
        .bearer_auth(operator)
        .json(&json!({"scope": {"shelves": ["R1-C1-R-S1-L1"]}, "apply": "sync"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The simulator's control API is not behind the controller's listener.
    let (code, _) = status(&d, "get", "/sim/state", Some(&d.token)).await;
    assert_eq!(code, 404);
    // A token in the query opens the event stream only (a browser's EventSource cannot send
    // a header); anywhere else it would end up in logs and histories for nothing.
    let (code, _) = status(
        &d,
        "get",
        &format!("/api/v1/ranges?access_token={}", tokens[0].1),
        None,
    )
    .await;
    assert_eq!(code, 401);
    let (code, _) = status(
        &d,
        "get",
        &format!("/api/v1/events?access_token={}", tokens[0].1),
        None,
    )
    .await;
    assert_eq!(code, 200);
}

/// The staff page's sign-in: a token opens a session kept in an HttpOnly, SameSite=Strict
/// cookie; the cookie alone reads, changes need the page's header, and the session ends
/// with sign-out or with its token.
#[tokio::test]
async fn a_session_cookie_stands_for_the_token_until_sign_out_or_revocation() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    let desk = token(&d, "desk", "operator").await;
    let c = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", d.base);
    let r = c
        .post(url("/api/v1/session"))
        .bearer_auth(&desk)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/api/", "Max-Age=43200"] {
        assert!(set.contains(attribute), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_string();
    assert!(cookie.starts_with("stackroom_session=srs_"), "{cookie}");
    let with_cookie = |req: reqwest::RequestBuilder| req.header("cookie", &cookie);

    let me: Value = with_cookie(c.get(url("/api/v1/me")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["name"].as_str(), me["role"].as_str()),
        (Some("desk"), Some("operator"))
    );
    // A change by cookie alone could come from a form of another site: refused without
    // the page's header.
    let r = with_cookie(c.post(url("/api/v1/events/ticket")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["reason"], "cross_site", "{body}");
    let r = with_cookie(c.post(url("/api/v1/events/ticket")))
        .header("x-requested-with", "stackroom")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // Signed out: the session opens nothing, and the cookie is cleared.
    let r = with_cookie(c.delete(url("/api/v1/session")))
        .header("x-requested-with", "stackroom")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let r = with_cookie(c.get(url("/api/v1/me"))).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("session has ended"),
        "{body}"
    );

    // A new session ends with its token.
    let r = c
        .post(url("/api/v1/session"))
        .bearer_auth(&desk)
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let r = c
        .get(url("/api/v1/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = api_client(&d.base)
        .delete(format!("{}/api/v1/tokens/desk", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = c
        .get(url("/api/v1/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the revoked token's session opens nothing");
}

#[tokio::test]
async fn an_event_stream_ticket_opens_one_stream_once() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    let viewer = token(&d, "kiosk", "viewer").await;
    let (code, ticket) = status(&d, "post", "/api/v1/events/ticket", Some(&viewer)).await;
    assert_eq!(code, 201);
    let ticket = ticket["ticket"].as_str().unwrap().to_string();
    assert!(ticket.starts_with("srk_"), "{ticket}");
    let events = format!("/api/v1/events?ticket={ticket}");
    assert_eq!(status(&d, "get", &events, None).await.0, 200, "first use");
    assert_eq!(status(&d, "get", &events, None).await.0, 401, "used up");
    let (code, _) = status(&d, "get", &format!("/api/v1/ranges?ticket={ticket}"), None).await;
    assert_eq!(code, 401, "a ticket opens the event stream only");
    // A ticket of a token revoked before it is used opens nothing.
    let (_, ticket) = status(&d, "post", "/api/v1/events/ticket", Some(&viewer)).await;
    let r = api_client(&d.base)
        .delete(format!("{}/api/v1/tokens/kiosk", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let events = format!(
        "/api/v1/events?ticket={}",
        ticket["ticket"].as_str().unwrap()
    );
    assert_eq!(status(&d, "get", &events, None).await.0, 401);
}

#[tokio::test]
async fn a_client_that_keeps_guessing_is_slowed_down_and_revoked_tokens_open_nothing() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    let viewer = token(&d, "desk", "viewer").await;
    for _ in 0..6 {
        assert_eq!(
            status(&d, "get", "/api/v1/ranges", Some("srt_guess"))
                .await
                .0,
            401
        );
    }
    let start = Instant::now();
    assert_eq!(
        status(&d, "get", "/api/v1/ranges", Some("srt_guess"))
            .await
            .0,
        401
    );
    assert!(
        start.elapsed() >= Duration::from_millis(90),
        "{:?}",
        start.elapsed()
    );
    // A right token clears the slate.
    assert_eq!(
        status(&d, "get", "/api/v1/ranges", Some(&viewer)).await.0,
        200
    );
    let r = api_client(&d.base)
        .delete(format!("{}/api/v1/tokens/desk", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        status(&d, "get", "/api/v1/ranges", Some(&viewer)).await.0,
        401
    );
    let (_, _, list) = get(&d.base, "/api/v1/tokens").await;
    let desk = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "desk")
        .unwrap();
    assert!(!desk["revoked_at"].is_null(), "{desk}");
    assert!(
        !list.to_string().contains(&viewer[4..]),
        "no secret is ever listed"
    );
}

#[tokio::test]
async fn changes_motions_and_refusals_are_in_the_audit_trail() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    let operator = token(&d, "floor-1", "operator").await;
    // A token made on the command line works at once.
    let out = std::process::Command::new(BIN)
        .args([
            "token",
            "create",
            "--role",
            "archivist",
            "--name",
            "clerk",
            "--data",
        ])
        .arg(data.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clerk = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(clerk.starts_with("srt_"), "{clerk}");

    wait_for(&d.base, "/api/v1/ranges/1", 15, |v| v["link"] == "up").await;
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{}/api/v1/ranges/1/aisles/3/open", d.base))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let op: Value = r.json().await.unwrap();
    let op = op["operation"].as_str().unwrap().to_string();
    let done = wait_for(&d.base, &format!("/api/v1/operations/{op}"), 30, |v| {
        v["state"] == "done"
    })
    .await;
    assert_eq!(done["actor"], "floor-1", "{done}");
    // A refusal: a person in aisle 5, closing is refused.
    let sim = reqwest::Client::new();
    sim.put(format!("{}/sim/ranges/1/aisles/3/occupied", d.sim))
        .body("true")
        .send()
        .await
        .unwrap();
    wait_for(&d.base, "/api/v1/ranges/1", 15, |v| {
        v["occupied_aisles"] == json!([3])
    })
    .await;
    let r = c
        .post(format!("{}/api/v1/ranges/1/close", d.base))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = c
        .put(format!("{}/api/v1/boxes/0451-H-001-00001/binding", d.base))
        .bearer_auth(&clerk)
        .json(&json!({"shelf": "R3-C2-L-S1-L1", "reason": "audit test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .put(format!("{}/api/v1/boxes/0451-H-001-00002/binding", d.base))
        .bearer_auth(&operator)
        .json(&json!({"shelf": "R3-C2-L-S1-L1", "reason": "not allowed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let trail = wait_for(&d.base, "/api/v1/audit?kind=motion", 15, |v| {
        v["items"].as_array().is_some_and(|i| !i.is_empty())
    })
    .await;
    let motion = &trail["items"][0];
    assert_eq!(motion["actor"], "floor-1");
    assert_eq!(motion["outcome"], "done");
    assert!(
        motion["action"]
            .as_str()
            .unwrap()
            .starts_with("open range 1"),
        "{motion}"
    );
    let (_, _, all) = get(&d.base, "/api/v1/audit").await;
    let items = all["items"].as_array().unwrap();
    let has = |actor: &str, kind: &str, action: &str, outcome: &str| {
        items.iter().any(|e| {
            e["actor"] == actor
                && e["kind"] == kind
                && e["action"].as_str().unwrap().contains(action)
                && e["outcome"].as_str().unwrap().starts_with(outcome)
        })
    };
    assert!(
        has(
            "floor-1",
            "request",
            "POST /api/v1/ranges/1/aisles/3/open",
            "202"
        ),
        "{all}"
    );
    assert!(
        has(
            "floor-1",
            "request",
            "POST /api/v1/ranges/1/close",
            "409 refused: aisle_occupied"
        ),
        "{all}"
    );
    assert!(
        has(
            "clerk",
            "request",
            "PUT /api/v1/boxes/0451-H-001-00001/binding",
            "200"
        ),
        "{all}"
    );
    assert!(
        has(
            "floor-1",
            "denied",
            "PUT /api/v1/boxes/0451-H-001-00002/binding",
            "403"
        ),
        "{all}"
    );
    assert!(
        has("demo", "token", "create token floor-1", "done"),
        "{all}"
    );
    assert!(has("cli", "token", "create token clerk", "done"), "{all}");
    let (_, _, mine) = get(&d.base, "/api/v1/audit?actor=clerk").await;
    assert!(
        mine["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == "clerk")
    );
    let (code, _, bad) = get(&d.base, "/api/v1/audit?kind=everything").await;
    assert_eq!((code, bad["field"].as_str()), (422, Some("kind")));

    // The history of the box names the clerk.
    let (_, _, history) = get(&d.base, "/api/v1/boxes/0451-H-001-00001/history").await;
    assert_eq!(
        history["events"].as_array().unwrap().last().unwrap()["actor"],
        "clerk"
    );

    // Exported as CSV from the command line, while the controller runs.
    let out = std::process::Command::new(BIN)
        .args(["audit", "export", "--data"])
        .arg(data.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(
        csv.starts_with("id,at,actor,kind,action,outcome,detail\n"),
        "{csv}"
    );
    assert!(csv.contains(",floor-1,motion,open range 1"), "{csv}");

    // And the database backed up while it runs.
    let copy = data.path().join("copy.db");
    let out = std::process::Command::new(BIN)
        .args(["backup"])
        .arg(&copy)
        .arg("--data")
        .arg(data.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = rusqlite::Connection::open(&copy).unwrap();
    let boxes: i64 = db
        .query_row("SELECT COUNT(*) FROM boxes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(boxes, 5400);
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[tokio::test]
async fn revoking_a_token_ends_its_open_event_stream() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    let watcher = token(&d, "wall-screen", "viewer").await;
    let mut stream = reqwest::Client::new()
        .get(format!("{}/api/v1/events", d.base))
        .bearer_auth(&watcher)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    // The current range states come first: the stream is open.
    assert!(matches!(stream.chunk().await, Ok(Some(_))));
    let r = api_client(&d.base)
        .delete(format!("{}/api/v1/tokens/wall-screen", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let revoked = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream of a revoked token is still open");
    eprintln!("ended {:?} after the revocation", revoked.elapsed());
}

#[tokio::test]
async fn an_expired_token_is_told_so() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    let r = api_client(&d.base)
        .post(format!("{}/api/v1/tokens", d.base))
        .json(&json!({"name": "temp", "role": "viewer", "expires_in_days": 30}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert!(body["expires_at"].is_string(), "{body}");
    let secret = body["secret"].as_str().unwrap().to_string();
    assert_eq!(
        status(&d, "get", "/api/v1/ranges", Some(&secret)).await.0,
        200
    );
    // Thirty days pass (written as another process would).
    let db = rusqlite::Connection::open(data.path().join("stackroom.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute(
        "UPDATE tokens SET expires_at = 1000 WHERE name = 'temp'",
        [],
    )
    .unwrap();
    // A change made behind stackroom's back reaches its token cache within a second.
    tokio::time::sleep(stackroom::access::RECHECK + Duration::from_millis(100)).await;
    let (code, problem) = status(&d, "get", "/api/v1/ranges", Some(&secret)).await;
    assert_eq!(code, 401);
    assert_eq!(problem["type"], "urn:stackroom:token-expired", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("expired at 1970-01-01"),
        "{problem}"
    );
    let r = api_client(&d.base)
        .post(format!("{}/api/v1/tokens", d.base))
        .json(&json!({"name": "temp2", "role": "viewer", "expires_in_days": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
}

/// 查阅登记: who was shown which box, how and why; admins read and export it.
#[tokio::test]
async fn every_box_shown_is_in_the_lookup_register_with_its_purpose() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    let desk = token(&d, "reading-desk", "viewer").await;
    let client = reqwest::Client::new();
    let r = client
        .get(format!(
            "{}/api/v1/locate?archive_no=0451-H-001-00001",
            d.base
        ))
        .bearer_auth(&desk)
        // "客户投诉 #12", percent-encoded as the page sends it.
        .header("x-purpose", "%E5%AE%A2%E6%88%B7%E6%8A%95%E8%AF%89%20%2312")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .get(format!("{}/api/v1/boxes/0451-H-001-00002/history", d.base))
        .bearer_auth(&desk)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let (code, _) = status(&d, "get", "/api/v1/lookups", Some(&desk)).await;
    assert_eq!(code, 403, "only admins read the register");
    let (_, _, list) = get(&d.base, "/api/v1/lookups?actor=reading-desk").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    assert_eq!(items[0]["what"], "history");
    assert_eq!(items[0]["archive_no"], "0451-H-001-00002");
    assert!(items[0].get("purpose").is_none(), "{list}");
    assert_eq!(items[1]["what"], "locate");
    assert_eq!(items[1]["archive_no"], "0451-H-001-00001");
    assert_eq!(items[1]["purpose"], "客户投诉 #12");

    let r = api_client(&d.base)
        .get(format!(
            "{}/api/v1/lookups?format=csv&archive_no=0451-H-001-00001",
            d.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csv = r.text().await.unwrap();
    assert!(
        csv.starts_with("\u{feff}at,actor,archive_no,what,purpose"),
        "{csv}"
    );
    assert!(
        csv.contains("reading-desk,0451-H-001-00001,locate,客户投诉 #12"),
        "{csv}"
    );
    let (_, _, audit) = get(&d.base, "/api/v1/audit?kind=export").await;
    assert!(
        audit.to_string().contains("lookup register as CSV"),
        "{audit}"
    );
}
