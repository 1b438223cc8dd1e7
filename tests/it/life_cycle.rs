//! The archive's life cycle through the demo's API, as staff would go through it: records
//! corrected with a trace and found by their fields, contents, retention and disposal.

use serde_json::{Value, json};

use crate::common;

use common::{api_client, get, start_demo, token};

fn nos(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["archive_no"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_record_is_corrected_with_a_trace_and_found_by_customer_number() {
    let data = tempfile::tempdir().unwrap();
    let demo = start_demo(data.path(), &[]);
    let base = demo.base.clone();
    let no = "0451-H-001-00003";

    let (status, _, fields) = get(&base, "/api/v1/fields").await;
    assert_eq!(status, 200);
    let keys: Vec<&str> = fields["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"customer_no") && keys.contains(&"account_closed"),
        "{fields}"
    );

    // The seeded customer number finds its box from the search box.
    let (_, _, before) = get(&base, &format!("/api/v1/boxes/{no}")).await;
    let seeded = before["fields"]["customer_no"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, _, found) = get(&base, &format!("/api/v1/boxes?q={seeded}")).await;
    assert_eq!(nos(&found)[0], no, "{found}");

    // Title and customer number corrected; the trail shows both with the reason.
    let (status, corrected) = send(
        &base,
        reqwest::Method::PATCH,
        &format!("/api/v1/boxes/{no}"),
        None,
        Some(json!({"title": "供用电合同 广州市白云电器有限公司 2019",
                "fields": {"customer_no": "H37752077"},
                "reason": "营业厅录入错误，依合同更正"})),
    )
    .await;
    assert_eq!(status, 200, "{corrected}");
    assert_eq!(corrected["fields"]["customer_no"], "H37752077");
    let (_, _, trail) = get(&base, &format!("/api/v1/boxes/{no}/changes")).await;
    let changes = trail["changes"].as_array().unwrap();
    let changed: Vec<&str> = changes
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["title", "fields.customer_no"], "{trail}");
    assert_eq!(changes[1]["before"], seeded.as_str());
    assert_eq!(changes[1]["after"], "H37752077");
    assert_eq!(changes[0]["reason"], "营业厅录入错误，依合同更正");

    let (_, _, found) = get(&base, "/api/v1/boxes?q=H37752077").await;
    assert_eq!(nos(&found), [no]);
    let (_, _, found) = get(&base, "/api/v1/boxes?field=customer_no&value=H37752077").await;
    assert_eq!(nos(&found), [no]);
    let (_, _, old) = get(
        &base,
        &format!("/api/v1/boxes?field=customer_no&value={seeded}"),
    )
    .await;
    assert_eq!(old["total"], 0);
    // A range of closing dates: every box in it closed within it.
    let (status, _, closed) = get(
        &base,
        "/api/v1/boxes?field=account_closed&from=2010-01-01&to=2012-12-31&limit=200",
    )
    .await;
    assert_eq!(status, 200, "{closed}");
    let items = closed["items"].as_array().unwrap();
    assert!(!items.is_empty());
    for b in items {
        let day = b["fields"]["account_closed"].as_str().unwrap();
        assert!(("2010-01-01"..="2012-12-31").contains(&day), "{day}");
    }

    // Bad input names its field; the label's barcode finds the box.
    let (status, bad) = send(
        &base,
        reqwest::Method::PATCH,
        &format!("/api/v1/boxes/{no}"),
        None,
        Some(json!({"fields": {"account_closed": "last year"}, "reason": "x"})),
    )
    .await;
    assert_eq!(
        (status, bad["field"].as_str()),
        (422, Some("fields.account_closed")),
        "{bad}"
    );
    let (status, bad) = send(
        &base,
        reqwest::Method::PATCH,
        &format!("/api/v1/boxes/{no}"),
        None,
        Some(json!({"title": "x"})),
    )
    .await;
    assert_eq!(status, 422, "a correction says why: {bad}");
    let (status, _, _) = get(&base, "/api/v1/boxes?field=account_closed&from=soon").await;
    assert_eq!(status, 422);
    let (status, _, located) = get(&base, &format!("/api/v1/locate?barcode={no}")).await;
    assert_eq!((status, located["archive_no"].as_str()), (200, Some(no)));
}

async fn send(
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = match token {
        Some(t) => reqwest::Client::new()
            .request(method, format!("{base}{path}"))
            .bearer_auth(t),
        None => api_client(base).request(method, format!("{base}{path}")),
    };
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// GET a PDF: status and its bytes.
async fn pdf(base: &str, path: &str) -> (u16, Vec<u8>) {
    let r = api_client(base)
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    if status == 200 {
        assert_eq!(r.headers()["content-type"], "application/pdf");
    }
    (status, r.bytes().await.unwrap().to_vec())
}

/// The text a PDF shows, page by page: every string shown, decoded from the UCS-2 of the
/// forms' font.
fn pdf_text(bytes: &[u8]) -> Vec<String> {
    let doc = lopdf::Document::load_mem(bytes).expect("the PDF parses");
    doc.get_pages()
        .into_values()
        .map(|page| {
            let content = lopdf::content::Content::decode(&doc.get_page_content(page)).unwrap();
            let mut text = String::new();
            for op in content.operations.iter().filter(|op| op.operator == "Tj") {
                if let Some(lopdf::Object::String(s, _)) = op.operands.first() {
                    let units: Vec<u16> = s
                        .chunks(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect();
                    text.push_str(&String::from_utf16_lossy(&units));
                    text.push('\n');
                }
            }
            text
        })
        .collect()
}

#[tokio::test]
async fn contents_grow_and_a_box_due_is_appraised_approved_by_another_destroyed_and_certified() {
    use reqwest::Method;
    let data = tempfile::tempdir().unwrap();
    let demo = start_demo(data.path(), &[]);
    let base = demo.base.clone();

    // Contents: added to, never replaced; printed.
    let no = "0451-L-001-00002";
    let path = format!("/api/v1/boxes/{no}/contents");
    let (status, c) = send(
        &base,
        Method::POST,
        &path,
        None,
        Some(json!({"items": [
        {"title": "供用电合同", "pages": 12, "date": "2015-03-02", "e_file": "EF-2015-0001",
         "e_uri": "erms://gd-power/2015/0001"},
        {"title": "用电申请书", "pages": 2}]})),
    )
    .await;
    assert_eq!(status, 201, "{c}");
    let (status, c) = send(
        &base,
        Method::POST,
        &path,
        None,
        Some(json!({"items": [{"title": "销户申请", "pages": 1, "date": "2016/7/1"}]})),
    )
    .await;
    assert_eq!(status, 201, "{c}");
    let items: Vec<(u64, &str)> = c["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["item_no"].as_u64().unwrap(), d["title"].as_str().unwrap()))
        .collect();
    assert_eq!(
        items,
        [(1, "供用电合同"), (2, "用电申请书"), (3, "销户申请")]
    );
    let (status, dup) = send(
        &base,
        Method::POST,
        &path,
        None,
        Some(json!({"items": [{"item_no": 2, "title": "替换"}]})),
    )
    .await;
    assert_eq!(status, 409, "an item is added to, never replaced: {dup}");
    let (status, bad) = send(
        &base,
        Method::POST,
        &path,
        None,
        Some(json!({"items": [{"title": "x", "date": "spring"}]})),
    )
    .await;
    assert_eq!(
        (status, bad["field"].as_str()),
        (422, Some("items[0].date"))
    );
    let (_, _, found) = get(&base, "/api/v1/documents?e_file=EF-2015-0001").await;
    assert_eq!(found["items"][0]["archive_no"], no, "{found}");
    let (status, printed) = pdf(&base, &format!("{path}?format=pdf")).await;
    assert_eq!(status, 200);
    let text = pdf_text(&printed).concat();
    assert!(
        text.contains("卷内目录") && text.contains(no) && text.contains("用电申请书"),
        "{text}"
    );

    // A loan's slip prints with the borrower, the boxes and their titles.
    let due_day = (chrono::Utc::now().date_naive() + chrono::Days::new(3)).to_string();
    let (status, loan) = send(
        &base,
        Method::POST,
        "/api/v1/loans",
        None,
        Some(json!({
        "borrower": {"name": "张三", "department": "营销部"}, "boxes": [no],
        "purpose": "核对电费", "kind": "reading_room", "due": due_day})),
    )
    .await;
    assert_eq!(status, 201, "{loan}");
    let (status, slip) = pdf(&base, &format!("/api/v1/loans/{}/slip", loan["id"])).await;
    assert_eq!(status, 200);
    let text = pdf_text(&slip).concat();
    assert!(
        text.contains("借阅单")
            && text.contains("张三")
            && text.contains(no)
            && text.contains("核对电费"),
        "{text}"
    );
    let (status, _) = pdf(&base, "/api/v1/loans/99999/slip").await;
    assert_eq!(status, 404);

    // The appraisal: residential accounts closed more than ten years ago.
    let (status, _, list) = get(&base, "/api/v1/appraisal?limit=5").await;
    assert_eq!(status, 200, "{list}");
    assert!(list["total"].as_u64().unwrap() > 0, "{list}");
    let due = list["items"][0].clone();
    let due_no = due["archive_no"].as_str().unwrap().to_string();
    let today = chrono::Utc::now().date_naive().to_string();
    assert!(due["due"].as_str().unwrap() <= today.as_str(), "{due}");
    let csv = api_client(&base)
        .get(format!("{base}/api/v1/appraisal?format=csv&limit=5"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with("\u{feff}archive_no,title,class") && csv.contains(&due_no),
        "{csv}"
    );

    // Proposed by the archivist, approved by a second person, carried out, certified.
    let approver = token(&base, "chen", "approver").await;
    let (status, d) = send(
        &base,
        Method::POST,
        "/api/v1/disposals",
        None,
        Some(json!({"boxes": [due_no], "reason": "保管期满，经鉴定无继续保存价值"})),
    )
    .await;
    assert_eq!(status, 201, "{d}");
    let id = d["id"].as_i64().unwrap();
    let (status, not_due) = send(
        &base,
        Method::POST,
        "/api/v1/disposals",
        None,
        Some(json!({"boxes": ["0451-H-001-00001"], "reason": "x"})),
    )
    .await;
    assert_eq!(
        (status, not_due["type"].as_str()),
        (409, Some("urn:stackroom:not-due")),
        "{not_due}"
    );
    let (status, own) = send(
        &base,
        Method::POST,
        &format!("/api/v1/disposals/{id}/approve"),
        None,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 409, "the proposer does not approve: {own}");
    let (status, _) = send(
        &base,
        Method::POST,
        &format!("/api/v1/disposals/{id}/carry-out"),
        None,
        Some(json!({"method": "粉碎", "witness": "赵六"})),
    )
    .await;
    assert_eq!(status, 409, "not before approval");
    let (status, ok) = send(
        &base,
        Method::POST,
        &format!("/api/v1/disposals/{id}/approve"),
        Some(&approver),
        Some(json!({"note": "同意销毁"})),
    )
    .await;
    assert_eq!(
        (status, ok["state"].as_str()),
        (200, Some("approved")),
        "{ok}"
    );
    let (status, done) = send(
        &base,
        Method::POST,
        &format!("/api/v1/disposals/{id}/carry-out"),
        None,
        Some(json!({"method": "粉碎", "witness": "赵六"})),
    )
    .await;
    assert_eq!(
        (status, done["state"].as_str()),
        (200, Some("carried_out")),
        "{done}"
    );

    let listed = api_client(&base)
        .get(format!(
            "{base}/api/v1/disposals?format=csv&state=carried_out"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listed.starts_with("\u{feff}disposal,state") && listed.contains(&due_no),
        "{listed}"
    );
    let (status, printed) = pdf(&base, &format!("/api/v1/disposals/{id}/certificate")).await;
    assert_eq!(status, 200);
    let text = pdf_text(&printed).concat();
    assert!(
        text.contains("销毁清册") && text.contains(&due_no) && text.contains("chen"),
        "{text}"
    );

    let (status, _, gone) = get(&base, &format!("/api/v1/locate?archive_no={due_no}")).await;
    assert_eq!(
        (status, gone["type"].as_str()),
        (410, Some("urn:stackroom:box-disposed"))
    );
    let (_, _, found) = get(&base, &format!("/api/v1/boxes?q={due_no}")).await;
    assert_eq!(found["total"], 0, "out of search");
    let (status, _, kept) = get(&base, &format!("/api/v1/boxes/{due_no}")).await;
    assert_eq!(
        (status, kept["disposed"]["disposal"].as_i64()),
        (200, Some(id))
    );
    let (_, _, history) = get(&base, &format!("/api/v1/boxes/{due_no}/history")).await;
    assert_eq!(
        history["events"].as_array().unwrap().last().unwrap()["kind"],
        "unbind"
    );
    let (_, _, trail) = get(&base, "/api/v1/audit?limit=50").await;
    assert!(
        trail
            .to_string()
            .contains(&format!("/api/v1/disposals/{id}/carry-out")),
        "{trail}"
    );
}

#[tokio::test]
async fn the_register_exports_as_xlsx_that_reads_back_and_the_figures_add_up() {
    use calamine::{Reader, Xlsx};
    let data = tempfile::tempdir().unwrap();
    let demo = start_demo(data.path(), &[]);
    let base = demo.base.clone();

    let r = api_client(&base)
        .get(format!(
            "{base}/api/v1/register?format=xlsx&category=H&range=1"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("spreadsheetml")
    );
    let bytes = r.bytes().await.unwrap().to_vec();
    let mut book: Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).expect("the XLSX opens");
    let sheet = book
        .worksheet_range("档案清册")
        .expect("the register's sheet");
    let rows: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    let header = &rows[0];
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert!(rows.len() > 100, "{} rows", rows.len());
    for row in &rows[1..] {
        assert_eq!(row[col("category")], "H");
        assert!(row[col("shelf")].starts_with("R1-"), "{row:?}");
        assert_eq!(row[col("state")], "on_shelf");
        assert!(!row[col("customer_no")].is_empty());
    }
    assert_eq!(rows[1][col("archive_no")], "0451-H-001-00001");
    assert!(
        rows[1][col("title")]
            .chars()
            .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
    );

    // The same filter as CSV has the same boxes.
    let csv = api_client(&base)
        .get(format!("{base}/api/v1/register?category=H&range=1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        csv.trim_start_matches('\u{feff}').lines().count(),
        rows.len()
    );
    let (status, _, bad) = get(&base, "/api/v1/register?range=9").await;
    assert_eq!((status, bad["field"].as_str()), (422, Some("range")));

    let (status, _, stats) = get(&base, "/api/v1/stats").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["boxes"], 5400);
    let held: u64 = stats["holdings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["boxes"].as_u64().unwrap())
        .sum();
    assert_eq!(held, 5400);
    let bound: u64 = stats["fill"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["boxes"].as_u64().unwrap())
        .sum();
    assert_eq!(bound, 5400);
    let lights: Vec<&str> = stats["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["level"].as_str().unwrap())
        .collect();
    assert!(
        lights
            .iter()
            .all(|l| ["green", "yellow", "red"].contains(l)),
        "{lights:?}"
    );
    let (_, _, trail) = get(&base, "/api/v1/audit?kind=export").await;
    assert!(trail.to_string().contains("register as xlsx"), "{trail}");
}

#[tokio::test]
async fn a_transfer_batch_is_received_with_a_discrepancy_and_accepted_into_numbered_shelved_boxes()
{
    use reqwest::Method;
    let data = tempfile::tempdir().unwrap();
    let demo = start_demo(data.path(), &[]);
    let base = demo.base.clone();

    let (status, _, next) = get(&base, "/api/v1/series/0451-L-002/next").await;
    assert_eq!(status, 200, "{next}");
    let first = next["next"].as_str().unwrap().to_string();
    let completed = (chrono::Utc::now().date_naive() - chrono::Days::new(1)).to_string();
    let item = |title: &str, customer: &str| {
        json!({"series": "0451-L-002", "title": title,
               "fields": {"customer_no": customer, "customer_name": "天河区王芳"}})
    };
    let (status, t) = send(&base, Method::POST, "/api/v1/transfers", None, Some(json!({
        "office": "天河营业厅", "deliverer": "王芳", "completed_on": completed,
        "items": [item("销户资料", "L90000001"), item("电费结算", "L90000002"), item("用电申请", "L90000003")]}))).await;
    assert_eq!(status, 201, "{t}");
    let id = t["id"].as_i64().unwrap();
    assert_eq!(t["state"], "listed");
    assert!(t["deadline"].as_str().unwrap() > completed.as_str());
    let (status, bad) = send(
        &base,
        Method::POST,
        "/api/v1/transfers",
        None,
        Some(json!({
        "office": "x", "deliverer": "y", "completed_on": completed,
        "items": [{"series": "0451-Q-002", "title": "t"}]})),
    )
    .await;
    assert_eq!(
        (status, bad["field"].as_str()),
        (422, Some("items[0].series")),
        "{bad}"
    );

    let (status, r) = send(
        &base,
        Method::POST,
        &format!("/api/v1/transfers/{id}/receive"),
        None,
        Some(json!({"receiver": "档案室 陈", "checks": [
            {"line": 1, "found": "received"},
            {"line": 2, "found": "missing", "note": "营业厅未移交"},
            {"line": 3, "found": "received"}]})),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (r["state"].as_str(), r["discrepancies"].as_u64()),
        (Some("received"), Some(1))
    );
    let (status, a) = send(
        &base,
        Method::POST,
        &format!("/api/v1/transfers/{id}/accept"),
        None,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200, "{a}");
    let boxes = a["boxes"].as_array().unwrap();
    assert_eq!(boxes.len(), 2, "the missing item is not registered: {a}");
    assert_eq!(boxes[0]["archive_no"], first.as_str());
    let second = boxes[1]["archive_no"].as_str().unwrap();
    assert!(
        second > first.as_str() && second.starts_with("0451-L-002-"),
        "{second}"
    );
    for b in boxes {
        let no = b["archive_no"].as_str().unwrap();
        let (status, _, loc) = get(&base, &format!("/api/v1/boxes/{no}/location")).await;
        assert_eq!(status, 200, "{loc}");
        assert_eq!(
            loc["shelf"]["address"], b["shelf"],
            "on the shelf it was given"
        );
    }
    let (_, _, found) = get(&base, "/api/v1/boxes?q=L90000003").await;
    assert_eq!(found["items"][0]["archive_no"], second);
    let (status, _) = send(
        &base,
        Method::POST,
        &format!("/api/v1/transfers/{id}/accept"),
        None,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 409, "accepted once");
    // A batch's list as CSV: a bad line is named by its number.
    let csv_batch = |body: &'static str| {
        let base = base.clone();
        let completed = completed.clone();
        async move {
            let r = api_client(&base)
                .post(format!(
                    "{base}/api/v1/transfers/csv?office=%E8%B6%8A%E7%A7%80&deliverer=Li&completed_on={completed}"
                ))
                .header("content-type", "text/csv")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, bad) = csv_batch(
        "series,title,customer_no,account_closed\n0451-L-003,a,L1,\n0451-L-003,b,L2,someday\n",
    )
    .await;
    assert_eq!(status, 422, "{bad}");
    assert!(
        bad["detail"].as_str().unwrap().starts_with("line 3:"),
        "{bad}"
    );
    assert_eq!(bad["field"], "fields.account_closed");
    let (status, listed) =
        csv_batch("series,title,customer_no,e_file\n0451-L-003,销户资料,L3,EF-9\n").await;
    assert_eq!(status, 201, "{listed}");
    assert_eq!(listed["items"][0]["fields"]["e_file"], "EF-9");
    let list = api_client(&base)
        .get(format!("{base}/api/v1/transfers?format=csv"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        list.starts_with("\u{feff}transfer,office")
            && list.contains("销户资料")
            && list.contains("营业厅未移交"),
        "{list}"
    );

    // A number is taken by registering: POST /boxes with a series gets the next one.
    let (status, b) = send(
        &base,
        Method::POST,
        "/api/v1/boxes",
        None,
        Some(json!({"series": "0451-L-002", "title": "补录"})),
    )
    .await;
    assert_eq!(status, 201, "{b}");
    let (_, _, next) = get(&base, "/api/v1/series/0451-L-002/next").await;
    assert!(next["next"].as_str().unwrap() > b["archive_no"].as_str().unwrap());
}

#[tokio::test]
async fn a_box_kept_in_the_safe_is_located_there_and_its_aisle_is_not_opened() {
    use reqwest::Method;
    let data = tempfile::tempdir().unwrap();
    let demo = start_demo(data.path(), &[]);
    let base = demo.base.clone();
    let no = "0451-H-002-00004";
    let path = format!("/api/v1/boxes/{no}/place");

    let (status, bad) = send(
        &base,
        Method::PUT,
        &path,
        None,
        Some(json!({"place": "vault-9"})),
    )
    .await;
    assert_eq!(
        (status, bad["field"].as_str()),
        (422, Some("place")),
        "{bad}"
    );
    let (status, b) = send(
        &base,
        Method::PUT,
        &path,
        None,
        Some(json!({"place": "safe-1", "reason": "房产证原件"})),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(
        b["place"]["name"]["zh"], "保险柜 1",
        "the name as configured, both languages"
    );
    let (_, _, loc) = get(&base, &format!("/api/v1/locate?archive_no={no}")).await;
    assert_eq!(loc["state"], "in_place", "{loc}");
    assert_eq!(loc["place"]["kind"], "safe");
    assert!(
        loc["shelf"]["address"].is_string(),
        "its home shelf stays: {loc}"
    );
    let (status, refused) = send(
        &base,
        Method::POST,
        &format!("/api/v1/boxes/{no}/retrieve"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, refused["type"].as_str()),
        (409, Some("urn:stackroom:in-place")),
        "{refused}"
    );
    assert!(refused["detail"].as_str().unwrap().contains("Safe 1"));
    assert_eq!(refused["params"]["place"]["zh"], "保险柜 1", "{refused}");
    // A box with no home shelf, in the safe: locate says where it is.
    let (status, _) = send(
        &base,
        Method::POST,
        "/api/v1/boxes",
        None,
        Some(json!({"archive_no": "0451-H-900-00001", "title": "土地证"})),
    )
    .await;
    assert_eq!(status, 201);
    send(
        &base,
        Method::PUT,
        "/api/v1/boxes/0451-H-900-00001/place",
        None,
        Some(json!({"place": "safe-1"})),
    )
    .await;
    let (status, _, p) = get(&base, "/api/v1/locate?archive_no=0451-H-900-00001").await;
    assert_eq!(
        (status, p["type"].as_str()),
        (404, Some("urn:stackroom:box-in-place"))
    );
    assert!(p["detail"].as_str().unwrap().contains("Safe 1"), "{p}");

    let (status, back) = send(
        &base,
        Method::DELETE,
        &format!("{path}?reason=还回"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{back}");
    assert!(back["place"].is_null());
    let (_, _, loc) = get(&base, &format!("/api/v1/locate?archive_no={no}")).await;
    assert_eq!(loc["state"], "on_shelf");
    let (_, _, history) = get(&base, &format!("/api/v1/boxes/{no}/history")).await;
    let moves: Vec<(&str, &str)> = history["places"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(moves, [("in", "房产证原件"), ("out", "还回")]);
}
