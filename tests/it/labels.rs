//! Box labels from the real demo: a PDF that parses, whose barcode (rendered by Poppler's
//! pdftoppm, decoded by rxing) scans as the archive number; many labels by shelf; the
//! print audit; the CLI.
//!
//! pdftoppm comes from Debian's `poppler-utils`, which `.ci/run` installs; without it the
//! scanning test fails, unless `STACKROOM_OPTIONAL` names `poppler` (then it says it
//! left the scan out).

use crate::common;
use crate::common::tools;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use common::{api_client, client, get, post_json, start_demo};

fn pdftoppm() -> Option<&'static str> {
    let found = Path::new("/usr/bin/pdftoppm").exists();
    if !found {
        tools::missing("poppler", "apt-get install poppler-utils");
    }
    found.then_some("/usr/bin/pdftoppm")
}

/// Renders the first page of `pdf` and decodes its Code 128.
fn scan(pdf: &[u8], dir: &Path) -> Option<String> {
    let tool = pdftoppm()?;
    let file = dir.join("label.pdf");
    std::fs::write(&file, pdf).unwrap();
    let status = Command::new(tool)
        .args([
            "-r",
            "300",
            "-gray",
            "-png",
            "-singlefile",
            "-f",
            "1",
            "-l",
            "1",
        ])
        .arg(&file)
        .arg(dir.join("label"))
        .status()
        .unwrap();
    assert!(status.success());
    let png = dir.join("label.png");
    let result =
        rxing::helpers::detect_in_file(png.to_str().unwrap(), Some(rxing::BarcodeFormat::CODE_128))
            .expect("a Code 128 barcode on the label");
    Some(result.getText().to_string())
}

fn pages(pdf: &[u8]) -> usize {
    lopdf::Document::load_mem(pdf)
        .expect("the PDF parses")
        .get_pages()
        .len()
}

#[tokio::test]
async fn a_label_prints_with_a_barcode_that_scans_and_every_print_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo(&dir.path().join("data"), &[]);
    let base = demo.base.as_str();
    let a = "0451-H-001-00001";

    let r = api_client(base)
        .get(format!("{base}/api/v1/boxes/{a}/label"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let pdf = r.bytes().await.unwrap().to_vec();
    assert_eq!(pages(&pdf), 1);
    if let Some(text) = scan(&pdf, dir.path()) {
        assert_eq!(text, a, "the barcode scans as the archive number");
    }
    let r = api_client(base)
        .get(format!("{base}/api/v1/boxes/{a}/label?format=svg"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    let svg = r.text().await.unwrap();
    assert!(
        svg.contains(a) && svg.contains("1区 01列"),
        "archive number and home shelf in words: {svg}"
    );

    // Many: every box of a shelf, one page each.
    let r = api_client(base)
        .post(format!("{base}/api/v1/labels"))
        .json(&json!({"shelves": ["R1-C1-R-S1-L1"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let pdf = r.bytes().await.unwrap();
    let (_, _, shelves) = get(base, "/api/v1/shelves?range=1").await;
    let on_shelf = shelves["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["shelf"]["address"] == "R1-C1-R-S1-L1")
        .unwrap()["boxes"]
        .as_u64()
        .unwrap();
    assert!(on_shelf > 1);
    assert_eq!(pages(&pdf) as u64, on_shelf, "a page per box of the shelf");
    let (status, _, body) =
        post_json(base, "/api/v1/labels", &json!({"range": 1, "boxes": [a]})).await;
    assert_eq!(status, 422, "{body}");
    let (status, _, _) = post_json(
        base,
        "/api/v1/labels",
        &json!({"boxes": ["9999-X-000-00000"]}),
    )
    .await;
    assert_eq!(status, 404);

    // A viewer may not print customers' labels.
    let (_, _, t) = post_json(
        base,
        "/api/v1/tokens",
        &json!({"name": "counter", "role": "viewer"}),
    )
    .await;
    let r = client()
        .get(format!("{base}/api/v1/boxes/{a}/label"))
        .bearer_auth(t["secret"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The CLI prints a range.
    let out = dir.path().join("carriage-2.pdf");
    let run = Command::new(common::BIN)
        .args([
            "labels",
            "--shelves",
            "R1-C2-L-S1-L1,R1-C2-L-S1-L2",
            "--out",
        ])
        .arg(&out)
        .arg("--data")
        .arg(dir.path().join("data"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let printed = pages(&std::fs::read(&out).unwrap());
    assert!(printed > 0, "{printed}");

    // Every print, by whom.
    let (_, _, audit) = get(base, "/api/v1/audit?kind=print").await;
    let entries: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("demo".to_string(), format!("label of {a}")),
            ("demo".to_string(), format!("label of {a}")),
            (
                "demo".to_string(),
                "labels of shelves R1-C1-R-S1-L1".to_string()
            ),
            (
                "cli".to_string(),
                "labels of shelves R1-C2-L-S1-L1 R1-C2-L-S1-L2".to_string()
            ),
        ],
        "{audit}"
    );
    let _: Value = audit;
}
