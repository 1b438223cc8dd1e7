//! The staff page in a real browser: headless Chromium driven over WebDriver (Debian's
//! `chromium` and `chromium-driver`) against `stackroom demo`, at a tablet's size.
//!
//! `.ci/run` installs both. Without them the test fails, unless `STACKROOM_OPTIONAL` names
//! `browser` (then it says it skipped). Screenshots of each step land in
//! `target/tmp/page-*.png`.

use crate::common;
use crate::common::tools;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use common::{get, post_json, put, start_demo};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub(crate) struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tool(env: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    path.exists().then_some(path)
}

/// Starts chromedriver and a browser session; `None` when they are not installed.
pub(crate) async fn browser(profile: &Path) -> Option<(Driver, Client)> {
    let (Some(chromium), Some(chromedriver)) = (
        tool("STACKROOM_CHROMIUM", CHROMIUM),
        tool("STACKROOM_CHROMEDRIVER", CHROMEDRIVER),
    ) else {
        tools::missing("browser", "apt-get install chromium chromium-driver");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Driver(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let caps = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            // Without the background-networking flags Chromium keeps trying to reach
            // Google's hosts, which a closed network refuses.
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1024,768",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let caps = match caps {
        Value::Object(map) => map,
        _ => unreachable!(),
    };
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return Some((driver, client)),
            Err(e) if Instant::now() > deadline => panic!("no browser session: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// A screenshot of the page, for a person looking into a failure.
pub(crate) async fn snapshot(client: &Client, name: &str) {
    if let Ok(png) = client.screenshot().await {
        let _ = std::fs::write(
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("page-{name}.png")),
            png,
        );
    }
}

/// An attribute of the element `css`.
async fn text_of_attr(client: &Client, css: &str, attribute: &str) -> String {
    let value = client
        .execute(
            &format!("return document.querySelector({css:?}).getAttribute({attribute:?});"),
            vec![],
        )
        .await
        .unwrap();
    value.as_str().unwrap_or_default().to_string()
}

/// Waits until the JavaScript expression `condition` is true in the page.
pub(crate) async fn until(client: &Client, condition: &str, seconds: u64, what: &str) {
    let script = format!("return !!({condition});");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let holds = client.execute(&script, vec![]).await.unwrap();
        if holds == Value::Bool(true) {
            return;
        }
        if Instant::now() > deadline {
            snapshot(client, "failure").await;
            let text = client
                .execute("return document.body.innerText;", vec![])
                .await
                .unwrap_or_default();
            panic!("timed out waiting for {what} ({condition}); the page says:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the element `css` selects.
pub(crate) async fn click(client: &Client, css: &str) {
    on_fresh(client, css, |e| async move { e.click().await }).await;
}

/// Opens the tab `name` as a person would: clicks its button and sees the tab shown, and
/// clicks again if the click was lost (the alarm banner appearing moves the buttons down
/// between WebDriver finding one and clicking it).
async fn open_tab(client: &Client, name: &str) {
    let shown = format!("document.querySelector('#tab-{name}').hidden === false");
    let script = format!("return {shown};");
    for _ in 0..5 {
        click(client, &format!("[data-tab='{name}']")).await;
        for _ in 0..20 {
            if client.execute(&script, vec![]).await.unwrap() == Value::Bool(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    until(client, &shown, 1, &format!("the {name} tab")).await;
}

/// Chooses `value` in the select element `css` selects.
async fn choose(client: &Client, css: &str, value: &str) {
    on_fresh(
        client,
        css,
        |e| async move { e.select_by_value(value).await },
    )
    .await;
}

/// Finds `css` and does `act` on it, finding it again when the page had just drawn it
/// anew (a tab that reloads its list when opened replaces the element found a moment
/// before; a person would simply act on the new one).
async fn on_fresh<'a, F, Fut>(client: &Client, css: &str, act: F)
where
    F: Fn(fantoccini::elements::Element) -> Fut,
    Fut: std::future::Future<Output = Result<(), fantoccini::error::CmdError>> + 'a,
{
    for attempt in 0.. {
        let element = client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        match act(element).await {
            Ok(()) => return,
            Err(e) if attempt < 5 && is_stale(&e) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{css}: {e}"),
        }
    }
}

fn is_stale(e: &fantoccini::error::CmdError) -> bool {
    matches!(e, fantoccini::error::CmdError::Standard(w)
        if w.error == fantoccini::error::ErrorStatus::StaleElementReference)
}

async fn text_of(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// Types into the search box and opens the result for `archive_no`.
/// Puts `text` in the search field as typing would end (WebDriver's clear fires no input
/// event), so the page searches it.
async fn set_search(client: &Client, text: &str) {
    client
        .execute(
            "const s = document.querySelector('#search'); s.value = arguments[0]; s.dispatchEvent(new Event('input'));",
            vec![json!(text)],
        )
        .await
        .unwrap();
}

async fn choose_box(client: &Client, archive_no: &str) {
    let search = client.find(Locator::Css("#search")).await.unwrap();
    // Emptied as a person would, which empties the results: the ones that come next are
    // this search's.
    set_search(client, "").await;
    until(
        client,
        "document.querySelectorAll('#results li').length === 0",
        5,
        "the results to clear",
    )
    .await;
    search.send_keys(archive_no).await.unwrap();
    let result = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&format!(
            "button.result[data-archive-no='{archive_no}']"
        )))
        .await
        .unwrap();
    result.click().await.unwrap();
    until(
        client,
        &format!("document.querySelector('#box').dataset.archiveNo === '{archive_no}'"),
        5,
        "the box to be shown",
    )
    .await;
}

/// Opens the demo's page link (which signs in), and picks the language.
async fn open_page(client: &Client, page: &str, lang: &str) {
    client.goto(page).await.unwrap();
    until(
        client,
        "document.querySelector('#who-name').textContent === 'demo'",
        15,
        "signing in",
    )
    .await;
    choose(client, "#lang", lang).await;
    until(
        client,
        &format!("document.documentElement.lang.startsWith('{lang}')"),
        5,
        "the language",
    )
    .await;
}

async fn location(base: &str, archive_no: &str) -> Value {
    let (status, _, loc) = get(base, &format!("/api/v1/boxes/{archive_no}/location")).await;
    assert_eq!(status, 200, "{loc}");
    loc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_find_a_box_open_its_aisle_and_see_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_driver, client)) = browser(&dir.path().join("profile")).await else {
        return;
    };
    let demo = start_demo(&dir.path().join("data"), &["--time-scale", "10"]);
    let base = demo.base.as_str();

    // A box of range 1, and another of the same range behind a different aisle.
    let first = "0451-H-001-00001";
    let loc = location(base, first).await;
    let (range, aisle) = (
        loc["aisle"]["range"].as_u64().unwrap(),
        loc["aisle"]["aisle"].as_u64().unwrap(),
    );
    let mut second = None;
    for cabinet in 1..40 {
        let (_, _, found) = get(
            base,
            &format!("/api/v1/boxes?q=0451-H-{cabinet:03}&limit=1"),
        )
        .await;
        let Some(b) = found["items"].get(0) else {
            continue;
        };
        if b["location"]["aisle"]["range"].as_u64() == Some(range)
            && b["location"]["aisle"]["aisle"]
                .as_u64()
                .is_some_and(|a| a != aisle)
        {
            second = b["archive_no"].as_str().map(str::to_string);
            break;
        }
    }
    let second = second.expect("a box behind another aisle of the same range");
    let aisle_of = |no: &str| {
        let no = no.to_string();
        async move {
            location(base, &no).await["aisle"]["aisle"]
                .as_u64()
                .unwrap()
        }
    };
    // A range at rest always has one aisle open: the box behind a closed one is opened,
    // the other refused while someone is in the first.
    let view = common::wait_for(base, &format!("/api/v1/ranges/{range}"), 20, |v| {
        v["motion"] == "idle" && v["open_aisle"].is_u64()
    })
    .await;
    let (opened, refused) = if view["open_aisle"].as_u64() == Some(aisle) {
        (second.clone(), first.to_string())
    } else {
        (first.to_string(), second.clone())
    };
    let aisle = aisle_of(&opened).await;

    // The demo's link signs in by itself; the demo room speaks Chinese.
    client.goto(&demo.page).await.unwrap();
    until(
        &client,
        "document.querySelector('#who-name').textContent === 'demo'",
        15,
        "signing in",
    )
    .await;
    let url = client.current_url().await.unwrap();
    assert!(
        !url.as_str().contains("srt_"),
        "the token is taken out of the address: {url}"
    );
    until(
        &client,
        "document.documentElement.lang === 'zh-CN'",
        5,
        "the room's language",
    )
    .await;

    // A search tells how many it found and fetches more on asking; a number typed without
    // dashes, in lower case, is found as the rule writes it.
    set_search(&client, "0451h00100001").await;
    until(
        &client,
        &format!("document.querySelector(\"#results button.result[data-archive-no='{first}']\")"),
        10,
        "the box, though typed without dashes",
    )
    .await;
    set_search(&client, "0451-H-001").await;
    until(
        &client,
        "document.querySelectorAll('#results li').length === 12 && !document.querySelector('#search-more').hidden",
        10,
        "a first page of results",
    )
    .await;
    let note = text_of(&client, "#search-note").await;
    assert!(
        note.contains("找到") && note.contains("已显示 12"),
        "{note}"
    );
    click(&client, "#search-more").await;
    until(
        &client,
        "document.querySelectorAll('#results li').length === 24",
        10,
        "the next page of results",
    )
    .await;
    // The last result chosen: its Open aisle is in view on this tablet-sized window and on
    // a phone, where the map comes next, before the results.
    client
        .execute(
            "const r = document.querySelectorAll('#results button.result'); r[r.length - 1].click();",
            vec![],
        )
        .await
        .unwrap();
    let in_view = |css: &str| {
        format!(
            "(() => {{ const r = document.querySelector('{css}').getBoundingClientRect(); \
             return r.top >= 0 && r.bottom <= window.innerHeight; }})()"
        )
    };
    until(
        &client,
        &in_view("#open-aisle"),
        5,
        "Open aisle in view on a tablet",
    )
    .await;
    // On a phone the same choice, made there, brings its Open aisle into view.
    client.set_window_size(390, 844).await.unwrap();
    client
        .execute(
            "const r = document.querySelectorAll('#results button.result'); r[r.length - 1].click();",
            vec![],
        )
        .await
        .unwrap();
    until(
        &client,
        &in_view("#open-aisle"),
        5,
        "Open aisle in view on a phone",
    )
    .await;
    until(
        &client,
        "document.querySelector('svg.room').getBoundingClientRect().top \
         < document.querySelector('#results').getBoundingClientRect().top",
        5,
        "the map right after the box, before the results, on the phone",
    )
    .await;
    snapshot(&client, "phone").await;
    client.set_window_size(1024, 768).await.unwrap();

    // Find the box: its place in words and on the map.
    choose_box(&client, first).await;
    let words = text_of(&client, "#box-where").await;
    let shelf = loc["shelf"].clone();
    assert!(
        words.contains(&format!("{:02}列", shelf["carriage"].as_u64().unwrap()))
            && words.contains(&format!("{}节", shelf["section"]))
            && words.contains(&format!("{}层", shelf["level"])),
        "{words} for {shelf}"
    );
    let address = shelf["address"].as_str().unwrap();
    client
        .find(Locator::Css(&format!(
            "svg.room rect.shelf-focus[data-shelf='{address}']"
        )))
        .await
        .expect("the box's shelf is highlighted on the map");
    snapshot(&client, "found").await;

    // The map's text is readable at its drawn size; it zooms and comes back whole; the
    // chosen shelf section is shown from its aisle with the box's level marked.
    let smallest = client
        .execute(
            "return Math.min(...[...document.querySelectorAll('#map svg text')].filter((t) => t.textContent).map((t) => t.getBoundingClientRect().height));",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        smallest.as_f64().unwrap() >= 11.0,
        "map text {smallest} px high"
    );
    let whole = text_of_attr(&client, "#map svg", "viewBox").await;
    click(&client, "#map-in").await;
    until(
        &client,
        &format!("document.querySelector('#map svg').getAttribute('viewBox') !== '{whole}'"),
        5,
        "the map zoomed in",
    )
    .await;
    click(&client, "#map-all").await;
    until(
        &client,
        &format!("document.querySelector('#map svg').getAttribute('viewBox') === '{whole}'"),
        5,
        "the whole room again",
    )
    .await;
    let door = text_of(&client, "#map [data-door='bottom'] text").await;
    assert!(
        door == "门" || door == "door",
        "the door on its side: {door}"
    );
    let level = loc["shelf"]["level"].as_u64().unwrap();
    let face = text_of(&client, "#face .here").await;
    assert!(
        face.contains(first) && face.contains(&level.to_string()),
        "{face}"
    );

    // Open an aisle: the page follows the motion to the end and the map shows it open.
    // Pressed twice in a row: one command.
    choose_box(&client, &opened).await;
    client
        .execute(
            "const b = document.querySelector('#open-aisle'); b.click(); b.click();",
            vec![],
        )
        .await
        .unwrap();
    until(
        &client,
        "['pending', 'moving', 'open'].includes(document.querySelector('#motion').dataset.state)",
        5,
        "the opening to start",
    )
    .await;
    until(
        &client,
        "document.querySelector('#motion').dataset.state === 'open'",
        90,
        "the aisle to open",
    )
    .await;
    let open = format!("svg.room g.aisle.open[data-range='{range}'][data-aisle='{aisle}']");
    until(
        &client,
        &format!("document.querySelector(\"{open}\")"),
        10,
        "the map to show the aisle open",
    )
    .await;
    assert!(text_of(&client, "#motion").await.contains("已打开"));
    // The button no longer offers to open what is open.
    until(
        &client,
        "document.querySelector('#open-aisle').disabled",
        10,
        "no Open aisle for an open aisle",
    )
    .await;
    let button = text_of(&client, "#open-aisle").await;
    assert!(button.contains("已打开"), "{button}");
    let (_, _, trail) = get(base, "/api/v1/audit?kind=request&limit=1000").await;
    let retrieve = format!("POST /api/v1/boxes/{opened}/retrieve");
    let presses = trail
        .as_array()
        .or_else(|| trail["items"].as_array())
        .expect("the audit trail")
        .iter()
        .filter(|e| e["action"] == retrieve.as_str())
        .count();
    assert_eq!(presses, 1, "one command for two presses");
    snapshot(&client, "open").await;

    // Someone walks into the open aisle: the map shows them, live.
    let status = put(
        &demo.sim,
        &format!("/sim/ranges/{range}/aisles/{aisle}/occupied"),
        "true",
    )
    .await;
    assert_eq!(status, 200);
    let person = format!("svg.room g.aisle.occupied[data-range='{range}'][data-aisle='{aisle}']");
    until(
        &client,
        &format!("document.querySelector(\"{person}\")"),
        10,
        "the person on the map",
    )
    .await;

    // In English now; opening the other box's aisle would close theirs: refused, in words.
    choose(&client, "#lang", "en").await;
    until(
        &client,
        "document.documentElement.lang === 'en'",
        5,
        "English labels",
    )
    .await;
    let line = text_of(&client, "#motion").await;
    assert!(
        line.contains("is open"),
        "the motion line in the new language: {line}"
    );
    choose_box(&client, &refused).await;
    click(&client, "#open-aisle").await;
    until(
        &client,
        "document.querySelector('#motion').dataset.state === 'refused'",
        15,
        "the refusal",
    )
    .await;
    let refusal = text_of(&client, "#motion").await;
    assert!(
        refusal.contains(&format!("someone is in aisle {aisle}")),
        "the reason in plain words: {refusal}"
    );
    snapshot(&client, "refused").await;
    // The range panel says the same, loudly enough.
    open_tab(&client, "ranges").await;
    let card = text_of(&client, &format!(".card[data-range='{range}']")).await;
    assert!(
        card.contains(&format!("Someone in aisle {aisle}")),
        "{card}"
    );
    snapshot(&client, "ranges").await;

    // An emergency stop on another range is shown above everything, and goes away.
    assert_eq!(put(&demo.sim, "/sim/ranges/2/estop", "true").await, 200);
    until(
        &client,
        "document.querySelector('#alarms').innerText.includes('EMERGENCY STOP pressed on range B')",
        10,
        "the emergency stop alarm",
    )
    .await;
    until(
        &client,
        "document.querySelector(\".card[data-range='2']\").classList.contains('alarm')",
        5,
        "the card",
    )
    .await;
    snapshot(&client, "estop").await;
    assert_eq!(put(&demo.sim, "/sim/ranges/2/estop", "false").await, 200);
    until(
        &client,
        "document.querySelector('#alarms').innerText === ''",
        10,
        "the alarm to clear",
    )
    .await;

    // A viewer signs in with a token of their own: no buttons that move anything.
    let (status, _, viewer) = post_json(
        base,
        "/api/v1/tokens",
        &json!({"name": "counter", "role": "viewer"}),
    )
    .await;
    assert_eq!(status, 201, "{viewer}");
    click(&client, "#sign-out").await;
    let token = client.find(Locator::Css("#token")).await.unwrap();
    token
        .send_keys(viewer["secret"].as_str().unwrap())
        .await
        .unwrap();
    click(&client, "#sign-in-form button").await;
    until(
        &client,
        "document.querySelector('#who-name').textContent === 'counter'",
        10,
        "the viewer",
    )
    .await;
    choose_box(&client, first).await;
    for css in ["#open-aisle", "#sweep-form"] {
        let shown = client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap();
        assert!(!shown, "a viewer is not offered {css}");
    }
    open_tab(&client, "ranges").await;
    for action in ["open", "close", "ventilate", "stop"] {
        let buttons = client
            .find_all(Locator::Css(&format!(".card [data-action='{action}']")))
            .await
            .unwrap();
        for b in buttons {
            assert!(
                !b.is_displayed().await.unwrap(),
                "a viewer is not offered {action}"
            );
        }
    }
    snapshot(&client, "viewer").await;
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_take_stock_of_a_range_from_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_driver, client)) = browser(&dir.path().join("profile")).await else {
        return;
    };
    let demo = start_demo(&dir.path().join("data"), &["--time-scale", "10"]);
    // One box is not where the database says.
    let status = common::post_json(
        &demo.sim,
        "/sim/boxes/0451-H-001-00001/move",
        &json!({"shelf": "R1-C4-R-S3-L5"}),
    )
    .await
    .0;
    assert_eq!(status, 204);

    open_page(&client, &demo.page, "en").await;
    open_tab(&client, "stocktake").await;
    choose(&client, "#sweep-scope", "range:1").await;
    click(&client, "#sweep-form button[type=submit]").await;
    until(
        &client,
        "document.querySelector('#sweep').dataset.state === 'running'",
        10,
        "the sweep to start",
    )
    .await;
    // One runs at a time: the page says which, and does not offer a second.
    until(
        &client,
        "document.querySelector('#sweep-form button[type=submit]').disabled && document.querySelector('#sweep-running').textContent.includes('#')",
        10,
        "the start button waiting for the running sweep",
    )
    .await;
    until(
        &client,
        "document.querySelector('#sweep-progress').value > 0",
        60,
        "progress",
    )
    .await;
    until(
        &client,
        "document.querySelector('#sweep').dataset.state === 'done'",
        120,
        "the sweep to end",
    )
    .await;
    until(
        &client,
        "document.querySelector('.report.misplaced')",
        10,
        "the report",
    )
    .await;
    until(
        &client,
        "!document.querySelector('#sweep-form button[type=submit]').disabled",
        10,
        "the start button back once the sweep is done",
    )
    .await;
    let misplaced = text_of(&client, ".report.misplaced").await;
    assert!(
        misplaced.contains("0451-H-001-00001")
            && misplaced.contains("carriage 04, right face, section 3, level 5"),
        "{misplaced}"
    );
    // The row says the box's title and offers to take the found shelf as its binding.
    let (_, _, found) = get(&demo.base, "/api/v1/boxes/0451-H-001-00001").await;
    let title = found["title"].as_str().unwrap();
    assert!(misplaced.contains(title), "{misplaced}");
    let bound = location(&demo.base, "0451-H-001-00001").await;
    assert_eq!(bound["shelf"]["address"], "R1-C1-R-S1-L1", "{bound}");
    let row = "//section[contains(@class,'misplaced')]//tr[contains(., '0451-H-001-00001')]//button[@data-action='rebind']";
    client
        .find(Locator::XPath(row))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &client,
        "document.querySelector('#sweep-report .feedback').textContent.includes('carriage 04')",
        10,
        "the new binding said",
    )
    .await;
    let moved = location(&demo.base, "0451-H-001-00001").await;
    assert_eq!(moved["shelf"]["address"], "R1-C4-R-S3-L5", "{moved}");
    let summary = text_of(&client, "#sweep-report .summary").await;
    // A sweep of real radio misplaces a handful of boxes now and then (cross-reads).
    assert!(
        summary.contains(" misplaced") && summary.contains("0 not read"),
        "{summary}"
    );
    let report = text_of(&client, "#sweep-report").await;
    assert!(
        !report.contains("null"),
        "no stray text for empty sections: {report}"
    );
    until(
        &client,
        "document.querySelector('#sweep-list tr td:nth-child(3)')",
        10,
        "the list of sweeps",
    )
    .await;
    let started_by = text_of(&client, "#sweep-list tr td:nth-child(3)").await;
    assert!(
        !started_by.is_empty() && started_by != "api",
        "who started the sweep, by name: {started_by}"
    );
    snapshot(&client, "stocktake").await;
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_see_the_rooms_climate_and_acknowledge_an_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_driver, client)) = browser(&dir.path().join("profile")).await else {
        return;
    };
    let demo = start_demo(&dir.path().join("data"), &[]);
    open_page(&client, &demo.page, "en").await;

    // The map carries each zone's climate beside its ranges.
    until(
        &client,
        "/°C · \\d+ %/.test(document.querySelector('svg.room [data-climate=\"1\"]')?.textContent || '')",
        20,
        "the climate on the map",
    )
    .await;

    // Water under range B: the alarm is on every tab at once.
    assert_eq!(
        put(&demo.sim, "/sim/environment/binary/water-bc", "true").await,
        200
    );
    until(
        &client,
        "document.querySelector('#alarms').innerText.includes('ALARM WATER: water-bc')",
        15,
        "the water alarm",
    )
    .await;
    snapshot(&client, "water").await;

    // The environment tab: zones with their charts, the alarm, acknowledged with a note.
    open_tab(&client, "environment").await;
    until(
        &client,
        "document.querySelectorAll('.zone svg.chart').length === 4",
        15,
        "two charts per zone",
    )
    .await;
    until(
        &client,
        "document.querySelector('.alarm-row.active .ack input')",
        10,
        "the alarm's row",
    )
    .await;
    let note = client
        .find(Locator::Css(".alarm-row.active .ack input"))
        .await
        .unwrap();
    note.send_keys("towel under the pipe").await.unwrap();
    click(&client, ".alarm-row.active .ack button").await;
    until(
        &client,
        "document.querySelector('.alarm-row.acknowledged')",
        10,
        "the acknowledgement",
    )
    .await;
    let row = text_of(&client, ".alarm-row.acknowledged").await;
    assert!(row.contains("demo: towel under the pipe"), "{row}");
    let (_, _, alarms) = get(&demo.base, "/api/v1/alarms?state=acknowledged").await;
    assert_eq!(
        alarms["items"][0]["ack_note"], "towel under the pipe",
        "{alarms}"
    );
    until(&client, "document.querySelector('#sensor-list tr.alarm[data-sensor=\"water-bc\"]')?.innerText.includes('water!')", 10, "the sensor row").await;
    assert!(row.contains("water-bc: water detected in"), "{row}");
    snapshot(&client, "environment").await;

    // On the Chinese page the alarm is in Chinese words, none of the server's English.
    choose(&client, "#lang", "zh").await;
    until(
        &client,
        "document.querySelector('.alarm-row.acknowledged')?.innerText.includes('检测到漏水')",
        5,
        "the alarm in Chinese",
    )
    .await;
    let row = text_of(&client, ".alarm-row.acknowledged").await;
    assert!(!row.contains("water detected"), "{row}");
    // Names the config gives in both languages are said in the reader's.
    assert_eq!(text_of(&client, "#room-name").await, "客户档案一号库房");
    let zones = text_of(&client, "#zones").await;
    assert!(
        zones.contains("B、C 列") && !zones.contains("Ranges B and C"),
        "{zones}"
    );
    choose(&client, "#lang", "en").await;
    assert_eq!(
        text_of(&client, "#room-name").await,
        "Customer archive, stack room 1"
    );

    // Dry again: the alarm clears off the page.
    assert_eq!(
        put(&demo.sim, "/sim/environment/binary/water-bc", "false").await,
        200
    );
    until(
        &client,
        "!document.querySelector('#alarms').innerText.includes('WATER')",
        15,
        "the alarm to clear",
    )
    .await;
    // The alarm stays in the history, with who acknowledged it and when it cleared.
    click(&client, "#alarm-history summary").await;
    until(
        &client,
        "[...document.querySelectorAll('#alarm-history-list tr')].some((r) => r.innerText.includes('cleared') && r.innerText.includes('water'))",
        10,
        "the cleared alarm in the history",
    )
    .await;
    // A chart's text is drawn at its size, not scaled down on a narrow card.
    let sizes = client
        .execute(
            "return [...document.querySelectorAll('svg.chart .tick')].map((t) => t.getBoundingClientRect().height);",
            vec![],
        )
        .await
        .unwrap();
    let smallest = sizes
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .fold(f64::MAX, f64::min);
    assert!(smallest >= 11.0, "axis text {smallest} px high: {sizes}");
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_lend_a_box_at_the_loans_desk_and_see_the_gate_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_driver, client)) = browser(&dir.path().join("profile")).await else {
        return;
    };
    let demo = start_demo(&dir.path().join("data"), &[]);
    open_page(&client, &demo.page, "en").await;
    let a = "0451-H-001-00005";

    // From the box to the loans desk.
    choose_box(&client, a).await;
    click(&client, "#lend-box").await;
    until(
        &client,
        &format!("document.querySelector('#loan-boxes').value === '{a}'"),
        5,
        "the box on the form",
    )
    .await;
    client
        .find(Locator::Css("#loan-borrower"))
        .await
        .unwrap()
        .send_keys("Li Wei")
        .await
        .unwrap();
    client
        .find(Locator::Css("#loan-department"))
        .await
        .unwrap()
        .send_keys("Legal")
        .await
        .unwrap();
    client
        .find(Locator::Css("#loan-purpose"))
        .await
        .unwrap()
        .send_keys("court hearing")
        .await
        .unwrap();
    choose(&client, "#loan-kind", "external").await;
    // The kind's limits are said before the request, and bound the due date.
    let limits = text_of(&client, "#loan-limits").await;
    let last = (chrono::Utc::now().date_naive() + chrono::Duration::days(30)).to_string();
    assert!(
        limits.contains("30") && limits.contains(&last),
        "the external loan's limits: {limits}"
    );
    let max = client
        .execute("return document.querySelector('#loan-due').max;", vec![])
        .await
        .unwrap();
    assert_eq!(max, Value::String(last));
    let due = (chrono::Utc::now().date_naive() + chrono::Duration::days(5)).to_string();
    client
        .execute(
            &format!("document.querySelector('#loan-due').value = '{due}';"),
            vec![],
        )
        .await
        .unwrap();
    click(&client, "#loan-form button[type=submit]").await;

    // Requested, approved by another, checked out, on loan.
    let card = ".loan[data-state='requested']";
    until(
        &client,
        &format!("document.querySelector(\"{card}\")"),
        10,
        "the request",
    )
    .await;
    click(&client, &format!("{card} [data-action='approve']")).await;
    // Four eyes: the admin asked for this external loan, so someone else approves it.
    until(
        &client,
        "document.body.innerText.includes('four eyes')",
        10,
        "the four-eyes refusal in words",
    )
    .await;
    // The same refusal on the Chinese page is Chinese, from the page's own catalogue.
    choose(&client, "#lang", "zh").await;
    click(&client, &format!("{card} [data-action='approve']")).await;
    until(
        &client,
        "document.body.innerText.includes('双人复核')",
        10,
        "the four-eyes refusal in Chinese",
    )
    .await;
    let feedback = text_of(&client, &format!("{card} .feedback")).await;
    assert!(
        !feedback.contains("four eyes") && !feedback.contains("approve"),
        "no English left: {feedback}"
    );
    choose(&client, "#lang", "en").await;
    let (status, _, chief) = post_json(
        &demo.base,
        "/api/v1/tokens",
        &json!({"name": "chief", "role": "approver"}),
    )
    .await;
    assert_eq!(status, 201, "{chief}");
    let (_, _, loans) = get(&demo.base, "/api/v1/loans").await;
    let id = loans["items"][0]["id"].as_i64().unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/loans/{id}/approve", demo.base))
        .bearer_auth(chief["secret"].as_str().unwrap())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    client.refresh().await.unwrap();
    until(
        &client,
        "document.querySelector('#who-name').textContent === 'demo'",
        15,
        "signing in again",
    )
    .await;
    open_tab(&client, "loans").await;
    let card = ".loan[data-state='approved']";
    until(
        &client,
        &format!("document.querySelector(\"{card}\")"),
        10,
        "the approval",
    )
    .await;
    click(&client, &format!("{card} [data-action='checkout']")).await;
    let card = ".loan[data-state='checked_out']";
    until(
        &client,
        &format!("document.querySelector(\"{card}\")"),
        10,
        "the checkout",
    )
    .await;
    snapshot(&client, "loan").await;
    open_tab(&client, "find").await;
    choose_box(&client, a).await;
    until(
        &client,
        "document.querySelector('#box-where').textContent.includes('On loan to Li Wei')",
        10,
        "the box on loan",
    )
    .await;
    assert!(
        !client
            .find(Locator::Css("#open-aisle"))
            .await
            .unwrap()
            .is_enabled()
            .await
            .unwrap()
    );

    // Back, damaged: the loan waits for the box to be settled, here sent to repair.
    open_tab(&client, "loans").await;
    until(
        &client,
        &format!("document.querySelector(\"{card} select\")"),
        10,
        "the inspection",
    )
    .await;
    choose(&client, &format!("{card} select"), "damaged").await;
    click(&client, &format!("{card} [data-action='return']")).await;
    let card = ".loan[data-state='return_refused']";
    until(
        &client,
        &format!("document.querySelector(\"{card} [data-settle]\")"),
        10,
        "the refused return, to settle",
    )
    .await;
    choose(&client, &format!("{card} [data-settle]"), "repair").await;
    client
        .find(Locator::Css(&format!("{card} [data-settle-note]")))
        .await
        .unwrap()
        .send_keys("spine split; to the repair room")
        .await
        .unwrap();
    click(&client, &format!("{card} [data-action='settle']")).await;
    choose(&client, "#loan-filter", "all").await;
    until(
        &client,
        "document.querySelector(\".loan[data-state='returned']\")?.innerText.includes('sent to repair')",
        10,
        "the return, settled",
    )
    .await;
    open_tab(&client, "find").await;
    choose_box(&client, a).await;
    until(
        &client,
        "document.querySelector('#box-where').textContent.includes('Repair room')",
        10,
        "the box in the repair room, by its English name",
    )
    .await;
    // Its story: the loan and the repair room, newest first, and its neighbours.
    click(&client, "#box-more summary").await;
    until(
        &client,
        "document.querySelector('.box-life')?.innerText.includes('into Repair room')",
        10,
        "the box's life",
    )
    .await;
    let life = text_of(&client, ".box-life").await;
    let (repair, loan) = (
        life.find("into Repair room").unwrap(),
        life.find("loan #").expect("the loan in its life"),
    );
    assert!(repair < loan, "newest first: {life}");
    let neighbours = text_of(&client, ".neighbours").await;
    assert!(neighbours.contains("0451-H-001-00006"), "{neighbours}");

    // A box carried out through the door without a loan: loud on every tab.
    let r = common::client()
        .post(format!("{}/sim/gates/gate-1/walk", demo.sim))
        .json(&json!({"archive_no": "0451-H-001-00006", "direction": "out"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    until(
        &client,
        "document.querySelector('#alarms').innerText.includes('BOX LEFT WITHOUT A LOAN: 0451-H-001-00006')",
        15,
        "the gate alarm",
    )
    .await;
    snapshot(&client, "gate").await;
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_correct_a_record_add_to_its_contents_and_read_the_figures() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_driver, client)) = browser(&dir.path().join("profile")).await else {
        return;
    };
    let demo = start_demo(&dir.path().join("data"), &[]);
    open_page(&client, &demo.page, "zh").await;
    let a = "0451-H-001-00007";

    // Signed in once, signed in in a new tab: by the HttpOnly session cookie, with no
    // token kept where the page's scripts could read it.
    let kept = client
        .execute(
            "return [sessionStorage.getItem('stackroom.token'), localStorage.getItem('stackroom.token'), document.cookie];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(kept, json!([null, null, ""]));
    let first = client.window().await.unwrap();
    let tab = client.new_window(true).await.unwrap();
    client.switch_to_window(tab.handle).await.unwrap();
    let bare = demo.page.split('#').next().unwrap();
    client.goto(bare).await.unwrap();
    until(
        &client,
        "document.querySelector('#who-name').textContent === 'demo'",
        15,
        "the new tab signed in",
    )
    .await;
    client.close_window().await.unwrap();
    client.switch_to_window(first).await.unwrap();

    // The tabs answer the arrow keys, one tab stop for the list.
    client
        .execute("document.querySelector('[data-tab=find]').focus();", vec![])
        .await
        .unwrap();
    client
        .active_element()
        .await
        .unwrap()
        .send_keys(&fantoccini::key::Key::Right.to_string())
        .await
        .unwrap();
    until(
        &client,
        "document.activeElement.dataset.tab === 'picks' && !document.querySelector('#tab-picks').hidden && document.querySelector('[data-tab=find]').tabIndex === -1",
        5,
        "the next tab chosen by the arrow key",
    )
    .await;
    open_tab(&client, "find").await;

    // From the found box to its record: the title corrected with a reason.
    choose_box(&client, a).await;
    click(&client, "#open-record").await;
    until(
        &client,
        &format!("document.querySelector('#record').dataset.archiveNo === '{a}' && !document.querySelector('#tab-records').hidden"),
        10,
        "the record",
    )
    .await;
    client
        .execute(
            "document.querySelector('#record-title').value = '供用电合同 白云电器 2019';
             document.querySelector('[data-field=customer_no]').value = 'H37752077';
             document.querySelector('#record-reason').value = '依合同更正';",
            vec![],
        )
        .await
        .unwrap();
    click(&client, "#record-form button[type=submit]").await;
    until(
        &client,
        "document.querySelectorAll('#record-changes tr').length === 2",
        10,
        "the two corrections in the trail",
    )
    .await;
    let trail = text_of(&client, "#record-changes").await;
    assert!(
        trail.contains("H37752077") && trail.contains("依合同更正") && trail.contains("客户编号"),
        "{trail}"
    );

    // A document added to the contents.
    client
        .execute(
            "document.querySelector('#doc-title').value = '增容申请'; document.querySelector('#doc-pages').value = '3';",
            vec![],
        )
        .await
        .unwrap();
    click(&client, "#contents-form button[type=submit]").await;
    until(
        &client,
        "document.querySelector('#contents-list').innerText.includes('增容申请')",
        10,
        "the document in the contents",
    )
    .await;
    snapshot(&client, "record").await;

    // The figures, with their lights.
    open_tab(&client, "stats").await;
    until(
        &client,
        "document.querySelector('#stats-boxes') && document.querySelectorAll('#lights li').length > 3",
        10,
        "the figures",
    )
    .await;
    let total = text_of(&client, "#stats-boxes").await;
    assert!(total.contains("5,400") || total.contains("5400"), "{total}");
    assert!(
        text_of(&client, "#stats-tables")
            .await
            .contains("各区架位占用")
    );
    snapshot(&client, "stats").await;
    let (_, _, found) = get(&demo.base, "/api/v1/boxes?q=H37752077").await;
    assert_eq!(found["items"][0]["archive_no"], a);

    // A pick list of boxes behind two aisles, walked by range and aisle: the next aisle
    // is that of the first box not yet in hand, opened with one press.
    let picked = ["0451-H-030-00001", "0451-H-001-00007"];
    let mut walk = Vec::new();
    for no in picked {
        open_tab(&client, "find").await;
        choose_box(&client, no).await;
        click(&client, "#pick-box").await;
        let loc = location(&demo.base, no).await;
        walk.push((
            loc["aisle"]["range"].as_u64().unwrap(),
            loc["aisle"]["aisle"].as_u64().unwrap(),
            no,
        ));
    }
    walk.sort();
    assert_ne!(walk[0].1, walk[1].1, "two aisles: {walk:?}");
    open_tab(&client, "picks").await;
    until(
        &client,
        "document.querySelectorAll('#picks-list tr').length === 2",
        10,
        "the pick list",
    )
    .await;
    let order = client
        .execute(
            "return [...document.querySelectorAll('#picks-list tr')].map((r) => r.dataset.pick);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(order, json!([walk[0].2, walk[1].2]), "in walking order");
    click(&client, &format!("[data-picked='{}']", walk[0].2)).await;
    until(
        &client,
        &format!(
            "document.querySelector('#picks-next').textContent.includes('{}')",
            walk[1].1
        ),
        5,
        "the next aisle: the second box's",
    )
    .await;
    click(&client, "#picks-next").await;
    let (range, aisle) = (walk[1].0, walk[1].1);
    let view = common::wait_for(&demo.base, &format!("/api/v1/ranges/{range}"), 60, |v| {
        v["motion"] == "idle" && v["open_aisle"] == aisle
    })
    .await;
    assert_eq!(view["open_aisle"], aisle, "{view}");
    snapshot(&client, "picks").await;
    client.close().await.unwrap();
}

/// Every tab at the three sizes staff use (a counter screen, a tablet, a phone) in both
/// languages: nothing spills sideways, no stray `null`, no English server text on the
/// Chinese page, the chosen box's Open aisle on screen, reached from the keyboard too.
/// Each view is kept as a screenshot under `target/tmp/` (CI keeps them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_journeys_at_three_sizes_in_both_languages() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_driver, client)) = browser(&dir.path().join("profile")).await else {
        return;
    };
    let demo = start_demo(&dir.path().join("data"), &["--time-scale", "10"]);
    // A stocktake with a box off its shelf, for the report's journey.
    let status = common::post_json(
        &demo.sim,
        "/sim/boxes/0451-H-001-00002/move",
        &json!({"shelf": "R1-C4-R-S3-L5"}),
    )
    .await
    .0;
    assert_eq!(status, 204);
    let (status, _, sweep) = post_json(
        &demo.base,
        "/api/v1/sweeps",
        &json!({"scope": {"range": 1}}),
    )
    .await;
    assert_eq!(status, 202, "{sweep}");
    let sweep = sweep["id"].as_i64().unwrap();
    let done = common::wait_for(&demo.base, &format!("/api/v1/sweeps/{sweep}"), 180, |v| {
        v["state"] != "running"
    })
    .await;
    assert_eq!(done["state"], "done", "{done}");
    open_page(&client, &demo.page, "en").await;
    const TABS: [&str; 8] = [
        "find",
        "picks",
        "ranges",
        "stocktake",
        "loans",
        "environment",
        "records",
        "stats",
    ];
    // What the server writes and the Chinese page must not show.
    const ENGLISH: [&str; 7] = [
        "urn:",
        "Failed to",
        " is running",
        "cannot",
        " needs ",
        "not valid",
        "reader-",
    ];
    let mut journey = 0;
    for (width, height) in [(1280, 800), (1024, 768), (390, 844)] {
        client.set_window_size(width, height).await.unwrap();
        for lang in ["en", "zh"] {
            journey += 1;
            choose(&client, "#lang", lang).await;
            open_tab(&client, "find").await;
            // Found from the keyboard: the search, the arrow down, Enter on the result.
            set_search(&client, "0451-H-002-0001").await;
            until(
                &client,
                "document.querySelectorAll('#results button.result').length > 1",
                10,
                "results",
            )
            .await;
            // The search field's pause before it searches is over: these results stay.
            tokio::time::sleep(Duration::from_millis(600)).await;
            client
                .execute("document.querySelector('#search').focus();", vec![])
                .await
                .unwrap();
            let keys = [fantoccini::key::Key::Down, fantoccini::key::Key::Down];
            for key in keys {
                client
                    .active_element()
                    .await
                    .unwrap()
                    .send_keys(&key.to_string())
                    .await
                    .unwrap();
            }
            client
                .active_element()
                .await
                .unwrap()
                .send_keys(&fantoccini::key::Key::Enter.to_string())
                .await
                .unwrap();
            until(
                &client,
                "document.querySelector('#box').dataset.archiveNo === document.querySelectorAll('#results button.result')[1].dataset.archiveNo",
                5,
                "the second result chosen by the keyboard",
            )
            .await;
            until(
                &client,
                "(() => { const r = document.querySelector('#open-aisle').getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight; })()",
                5,
                &format!("Open aisle on screen at {width}x{height}"),
            )
            .await;
            let on_screen = |css: &str| {
                format!(
                    "(() => {{ const e = document.querySelector(\"{css}\"); if (!e) return false; \
                     e.scrollIntoView({{ block: 'nearest' }}); const r = e.getBoundingClientRect(); \
                     return r.width > 0 && r.top >= -1 && r.bottom <= window.innerHeight + 1 \
                     && r.left >= -1 && r.right <= window.innerWidth + 1; }})()"
                )
            };

            // The pick list: the found box added, the next aisle's button within reach.
            click(&client, "#pick-box").await;
            open_tab(&client, "picks").await;
            until(
                &client,
                &on_screen("#picks-next"),
                10,
                "the pick list's next aisle",
            )
            .await;

            // A damaged return settled at the desk: the box ends in the repair room.
            let lent = format!("0451-H-003-{journey:05}");
            let (status, _, loan) = post_json(&demo.base, "/api/v1/loans", &json!({
                "borrower": {"name": "Li Wei"}, "boxes": [lent], "purpose": "audit",
                "kind": "reading_room",
                "due": (chrono::Utc::now().date_naive() + chrono::Duration::days(2)).to_string(),
            }))
            .await;
            assert_eq!(status, 201, "{loan}");
            let id = loan["id"].as_i64().unwrap();
            let path = |action: &str| format!("/api/v1/loans/{id}/{action}");
            assert_eq!(
                post_json(&demo.base, &path("checkout"), &json!({})).await.0,
                200
            );
            let returned = json!({"inspections": [{"archive_no": lent, "result": "damaged"}]});
            assert_eq!(
                post_json(&demo.base, &path("return"), &returned).await.0,
                200
            );
            open_tab(&client, "loans").await;
            let card = format!(".loan[data-loan='{id}']");
            until(
                &client,
                &on_screen(&format!("{card} [data-action='settle']")),
                10,
                "the settle button",
            )
            .await;
            choose(&client, &format!("{card} [data-settle]"), "repair").await;
            client
                .find(Locator::Css(&format!("{card} [data-settle-note]")))
                .await
                .unwrap()
                .send_keys("spine split")
                .await
                .unwrap();
            click(&client, &format!("{card} [data-action='settle']")).await;
            let settled = common::wait_for(
                &demo.base,
                &format!("/api/v1/boxes/{lent}/location"),
                10,
                |v| v["state"] == "in_place",
            )
            .await;
            assert_eq!(settled["place"]["kind"], "repair", "{settled}");

            // The stocktake's report: the box found elsewhere, with its actions.
            open_tab(&client, "stocktake").await;
            until(
                &client,
                "document.querySelector('#sweep-list tr')",
                10,
                "the list of sweeps",
            )
            .await;
            click(&client, "#sweep-list tr").await;
            until(
                &client,
                &on_screen(".report.misplaced [data-action='open']"),
                20,
                "the misplaced box's row and its actions",
            )
            .await;
            for tab in TABS {
                open_tab(&client, tab).await;
                tokio::time::sleep(Duration::from_millis(400)).await;
                let seen = client
                    .execute(
                        "return [document.body.innerText, document.documentElement.scrollWidth, document.documentElement.clientWidth];",
                        vec![],
                    )
                    .await
                    .unwrap();
                let text = seen[0].as_str().unwrap();
                let (scroll, inner) = (seen[1].as_f64().unwrap(), seen[2].as_f64().unwrap());
                let at = format!("{tab} at {width}x{height} in {lang}");
                assert!(scroll <= inner + 1.0, "{at}: {scroll} px wide in {inner}");
                for stray in ["null", "undefined", "NaN"] {
                    assert!(!text.contains(stray), "{at}: '{stray}' in {text}");
                }
                if lang == "zh" {
                    for english in ENGLISH {
                        assert!(!text.contains(english), "{at}: '{english}' in {text}");
                    }
                }
                snapshot(&client, &format!("journey-{width}x{height}-{lang}-{tab}")).await;
            }
        }
    }
    client.close().await.unwrap();
}

/// Without a browser: the page's files, their headers, and the two routes the page is
/// built on (`/api/v1/me`, `/api/v1/room`).
#[tokio::test]
async fn page_files_and_the_routes_it_stands_on() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo(dir.path(), &[]);
    let base = demo.base.as_str();
    assert!(
        demo.page.starts_with(&format!("{base}/#token=srt_")),
        "{}",
        demo.page
    );

    // The page needs no token; what it shows does.
    let plain = common::client();
    let index = plain.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    let headers = index.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let html = index.text().await.unwrap();
    assert!(html.contains("/assets/app.js"));
    for (file, ctype) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("map.js", "text/javascript; charset=utf-8"),
        ("chart.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("i18n.json", "application/json"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let r = plain
            .get(format!("{base}/assets/{file}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            (
                r.status().as_u16(),
                r.headers()["content-type"].to_str().unwrap()
            ),
            (200, ctype),
            "{file}"
        );
        // Asked again with its ETag: not sent again.
        let etag = r.headers()["etag"].clone();
        let again = plain
            .get(format!("{base}/assets/{file}"))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{file}");
    }
    let missing = plain
        .get(format!("{base}/assets/nothing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let status = plain
        .get(format!("{base}/api/v1/room"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401, "the room's layout needs a token");

    // Who am I, and what may I do?
    let (status, _, me) = get(base, "/api/v1/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        (me["name"].as_str(), me["role"].as_str()),
        (Some("demo"), Some("admin"))
    );
    for action in [
        "retrieve",
        "open",
        "close",
        "ventilate",
        "stop",
        "lock",
        "unlock",
        "sweep",
        "sweep_sync",
        "audit",
    ] {
        assert!(
            me["may"].as_array().unwrap().contains(&json!(action)),
            "admin may {action}: {me}"
        );
    }
    for (role, may, may_not) in [
        (
            "viewer",
            &[][..],
            &["retrieve", "stop", "sweep", "lock"][..],
        ),
        (
            "operator",
            &["retrieve", "open", "stop", "sweep"][..],
            &["sweep_sync", "bind", "lock"][..],
        ),
        (
            "archivist",
            &["sweep_sync", "bind"][..],
            &["lock", "audit"][..],
        ),
    ] {
        let (status, _, token) = post_json(
            base,
            "/api/v1/tokens",
            &json!({"name": format!("t-{role}"), "role": role}),
        )
        .await;
        assert_eq!(status, 201, "{token}");
        let secret = token["secret"].as_str().unwrap();
        let me = common::api::get_json(&plain, &format!("{base}/api/v1/me"), secret).await;
        assert_eq!(me["role"], role);
        let list = me["may"].as_array().unwrap();
        for action in may {
            assert!(list.contains(&json!(action)), "{role} may {action}: {me}");
        }
        for action in may_not {
            assert!(
                !list.contains(&json!(action)),
                "{role} may not {action}: {me}"
            );
        }
    }

    // The room as configured: three motorized ranges with their carriages.
    let (status, _, room) = get(base, "/api/v1/room").await;
    assert_eq!(status, 200, "{room}");
    assert_eq!(
        (room["site_id"].as_str(), room["language"].as_str()),
        (Some("gd-power"), Some("zh"))
    );
    let ranges = room["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 3);
    assert_eq!(ranges[0]["name"], "A");
    assert_eq!(ranges[0]["carriages"].as_array().unwrap().len(), 10);
    assert_eq!(
        (ranges[0]["sections"].as_u64(), ranges[0]["levels"].as_u64()),
        (Some(4), Some(6))
    );
    assert!(ranges.iter().all(|r| r["motorized"] == true), "{room}");
}
