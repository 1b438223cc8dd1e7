//! The staff page: one HTML page with plain JavaScript and CSS, embedded in the binary and
//! served at `/` beside the API. No build step: the files in this folder are the page.
//!
//! The page signs in with a bearer token (kept in the tab's session storage; the demo
//! prints a link that carries it in the URL fragment, which never reaches a server), asks
//! `GET /api/v1/me` what its role may do, draws the room from `GET /api/v1/room` and the
//! live range states of `GET /api/v1/events`, and does everything else through the API
//! like any other client. Labels come from `i18n.json` (English and Chinese); the room's
//! language is the default and the page offers the other.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// A file of the page.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("app.js"),
    },
    Asset {
        name: "map.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("map.js"),
    },
    Asset {
        name: "chart.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("chart.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("style.css"),
    },
    Asset {
        name: "i18n.json",
        content_type: "application/json",
        body: include_bytes!("i18n.json"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("icon.svg"),
    },
];

/// The labels of the page, per language (for tests that check every label is translated).
pub const I18N: &str = include_str!("i18n.json");
/// The page's HTML and scripts, for the same tests.
pub const SOURCES: &[(&str, &str)] = &[
    ("index.html", include_str!("index.html")),
    ("app.js", include_str!("app.js")),
    ("map.js", include_str!("map.js")),
    ("chart.js", include_str!("chart.js")),
];

/// Strong validators: a file's ETag is its SHA-256, so a browser asks again cheaply.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
        .collect()
});

/// What the page may load and talk to: only this server.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let asset = &ASSETS[i];
    let etag = &ETAGS[i];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    response
}

/// `/` and `/assets/{file}`: open to all (the page holds no data; the API asks for a token).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route(
            "/assets/{file}",
            get(|Path(file): Path<String>, headers: HeaderMap| async move {
                serve(&file, &headers)
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_listed_once_with_a_distinct_etag() {
        let mut names: Vec<_> = ASSETS.iter().map(|a| a.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ASSETS.len());
        let mut etags = ETAGS.clone();
        etags.sort_unstable();
        etags.dedup();
        assert_eq!(etags.len(), ASSETS.len());
    }

    /// `{name}` placeholders of a label.
    fn placeholders(text: &str) -> Vec<&str> {
        let mut out: Vec<&str> = text
            .split('{')
            .skip(1)
            .filter_map(|s| s.split_once('}').map(|(name, _)| name))
            .collect();
        out.sort_unstable();
        out
    }

    #[test]
    fn every_label_is_in_both_languages_with_the_same_placeholders() {
        let all: serde_json::Value = serde_json::from_str(I18N).unwrap();
        let en = all["en"].as_object().unwrap();
        let zh = all["zh"].as_object().unwrap();
        let mut missing: Vec<_> = en.keys().filter(|k| !zh.contains_key(*k)).collect();
        missing.extend(zh.keys().filter(|k| !en.contains_key(*k)));
        assert!(
            missing.is_empty(),
            "labels in one language only: {missing:?}"
        );
        for (key, text) in en {
            let (en_text, zh_text) = (text.as_str().unwrap(), zh[key].as_str().unwrap());
            assert!(!zh_text.is_empty(), "{key}");
            assert_eq!(placeholders(en_text), placeholders(zh_text), "{key}");
        }
    }

    /// The API's alarm kinds are stable codes the page words itself: each needs its text
    /// in both languages, or the Chinese page would show the English message.
    #[test]
    fn every_alarm_kind_the_api_can_raise_has_its_words_in_both_languages() {
        use crate::store::text::Named;
        let all: serde_json::Value = serde_json::from_str(I18N).unwrap();
        let mut keys: Vec<String> = crate::environment::AlarmKind::ALL
            .iter()
            .map(|k| format!("alarm_text_{}", k.name()))
            .collect();
        keys.push("alarm_text_sensor_stale_why".into());
        for lang in ["en", "zh"] {
            for key in &keys {
                assert!(all[lang][key].is_string(), "{lang} has no {key}");
            }
        }
    }

    /// A field without a label is a field a screen reader cannot name: each input, select
    /// and text area of the page is inside a `<label>`, named by one (`for`), or carries an
    /// `aria-label` (directly or from the catalogue, `data-i18n-label`).
    #[test]
    fn every_field_of_the_page_has_a_label() {
        let html = SOURCES
            .iter()
            .find(|(file, _)| *file == "index.html")
            .unwrap()
            .1;
        let field = regex::Regex::new(r#"<(input|select|textarea)\b([^>]*)>"#).unwrap();
        let id = regex::Regex::new(r#"\bid="([^"]+)""#).unwrap();
        let mut checked = 0;
        for c in field.captures_iter(html) {
            let (at, attrs) = (c.get(0).unwrap().start(), &c[2]);
            if attrs.contains("type=\"hidden\"") {
                continue;
            }
            let labelled = attrs.contains("aria-label") || attrs.contains("data-i18n-label");
            let named_by_for = id
                .captures(attrs)
                .is_some_and(|i| html.contains(&format!("for=\"{}\"", &i[1])));
            // Inside a <label> that is still open where the field starts.
            let before = &html[..at];
            let inside = before
                .rfind("<label")
                .is_some_and(|open| before.rfind("</label>").is_none_or(|close| close < open));
            assert!(
                labelled || named_by_for || inside,
                "a field with no label: <{} {attrs}>",
                &c[1]
            );
            checked += 1;
        }
        assert!(
            checked > 20,
            "the pattern finds the page's fields ({checked})"
        );
    }

    #[test]
    fn every_label_the_page_names_exists() {
        let all: serde_json::Value = serde_json::from_str(I18N).unwrap();
        let en = all["en"].as_object().unwrap();
        let regex = regex::Regex::new(
            r#"data-i18n(?:-placeholder|-label)?="([a-z0-9_]+)"|\bt\("([a-z0-9_]+)""#,
        )
        .unwrap();
        let mut named = 0;
        for (file, source) in SOURCES {
            for c in regex.captures_iter(source) {
                let key = c.get(1).or_else(|| c.get(2)).unwrap().as_str();
                assert!(
                    en.contains_key(key),
                    "{file} names label '{key}', which i18n.json lacks"
                );
                named += 1;
            }
        }
        assert!(named > 50, "the pattern finds the page's labels ({named})");
        // Labels named from what the API answers (`why_${reason}`, `role_${role}`, …).
        let dynamic: &[(&str, &[&str])] = &[
            (
                "why_",
                &[
                    "obstacle",
                    "estop",
                    "locked",
                    "link_down",
                    "state_unknown",
                    "moving",
                    "no_such_aisle",
                    "room_alarm",
                    "stopping",
                    "busy",
                    "not_sent",
                    "not_confirmed",
                    "halted",
                    "expired",
                    "recently_occupied",
                    "unexpected_motion",
                    "watchdog",
                    "timeout",
                    "not_started",
                    "stop",
                    "superseded",
                ],
            ),
            (
                "role_",
                &["viewer", "operator", "archivist", "approver", "admin"],
            ),
            (
                "op_",
                &["open", "close", "ventilate", "lock", "unlock", "stop"],
            ),
            (
                "op_state_",
                &[
                    "queued",
                    "starting",
                    "moving",
                    "unconfirmed",
                    "stopping",
                    "done",
                    "refused",
                    "failed",
                    "stopped",
                ],
            ),
            (
                "motion_",
                &[
                    "refused",
                    "failed",
                    "stopped",
                    "starting",
                    "unconfirmed",
                    "stopping",
                ],
            ),
            ("range_motion_", &["idle", "moving", "stopped", "unknown"]),
            (
                "sweep_state_",
                &[
                    "running",
                    "done",
                    "failed",
                    "cancelled",
                    "skipped",
                    "interrupted",
                ],
            ),
            ("source_", &["manual", "import", "sweep", "live_read"]),
            ("history_", &["bind", "move", "unbind"]),
            ("history_place_", &["in", "out"]),
            ("history_found_", &["misplaced", "missing", "not_read"]),
            (
                "unread_",
                &[
                    "reader_not_running",
                    "no_antenna",
                    "reader_failed",
                    "cancelled",
                ],
            ),
            ("settle_", &["accepted", "repair", "lost"]),
            ("settled_", &["accepted", "repair", "lost"]),
            ("face_", &["left", "right"]),
            (
                "alarm_kind_",
                &[
                    "temperature_high",
                    "temperature_low",
                    "humidity_high",
                    "humidity_low",
                    "temperature_swing",
                    "humidity_swing",
                    "smoke",
                    "water",
                    "door_open",
                    "sensor_stale",
                    "range_unsecured",
                    "unexpected_motion",
                    "gate",
                    "backup_failed",
                ],
            ),
            ("alarm_state_", &["active", "acknowledged", "cleared"]),
            (
                "point_",
                &[
                    "climate",
                    "smoke",
                    "water",
                    "door",
                    "dehumidifier",
                    "fan",
                    "relay",
                ],
            ),
            ("env_state_", &["ok", "warning", "alarm", "stale"]),
            ("env_tripped_", &["smoke", "water", "door"]),
            ("kind_", &["reading_room", "external"]),
            (
                "inspection_",
                &["complete", "damaged", "pages_missing", "wrong_box"],
            ),
            (
                "loan_state_",
                &[
                    "requested",
                    "approved",
                    "rejected",
                    "checked_out",
                    "returned",
                    "return_refused",
                    "cancelled",
                ],
            ),
        ];
        for (prefix, names) in dynamic {
            for name in *names {
                assert!(
                    en.contains_key(&format!("{prefix}{name}")),
                    "{prefix}{name}"
                );
            }
        }
    }
}
