//! The archive's life cycle through the demo's API, as staff would go through it: records
//! corrected with a trace and found by their fields, contents, retention and disposal.

use serde_json::{Value, json};

use crate::common;

use common::{api_client, get, start_demo};

async fn patch(base: &str, path: &str, body: &Value) -> (u16, Value) {
    let r = api_client(base)
        .patch(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

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
    let (status, corrected) = patch(
        &base,
        &format!("/api/v1/boxes/{no}"),
        &json!({"title": "供用电合同 广州市白云电器有限公司 2019",
                "fields": {"customer_no": "H37752077"},
                "reason": "营业厅录入错误，依合同更正"}),
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
    let (status, bad) = patch(
        &base,
        &format!("/api/v1/boxes/{no}"),
        &json!({"fields": {"account_closed": "last year"}, "reason": "x"}),
    )
    .await;
    assert_eq!(
        (status, bad["field"].as_str()),
        (422, Some("fields.account_closed")),
        "{bad}"
    );
    let (status, bad) = patch(
        &base,
        &format!("/api/v1/boxes/{no}"),
        &json!({"title": "x"}),
    )
    .await;
    assert_eq!(status, 422, "a correction says why: {bad}");
    let (status, _, _) = get(&base, "/api/v1/boxes?field=account_closed&from=soon").await;
    assert_eq!(status, 422);
    let (status, _, located) = get(&base, &format!("/api/v1/locate?barcode={no}")).await;
    assert_eq!((status, located["archive_no"].as_str()), (200, Some(no)));
}
