//! The documents in a box (卷内目录): item number, title, pages, date, and the electronic
//! counterpart in the site's records system (an identifier and where it is stored). A box's
//! contents are added to later, never replaced (补充而不替换): rows are append-only.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::records::parse_date;
use crate::documents::{Column, Form};
use crate::location::{LocationError, LocationService, box_id};
use crate::time::{now_ms, wall};

/// A document to add to a box.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDocument {
    /// Its number in the box; absent: after the last one.
    pub item_no: Option<u32>,
    pub title: String,
    pub pages: Option<u32>,
    /// `YYYY-MM-DD`.
    pub date: Option<String>,
    /// The electronic file's identifier in the records system.
    pub e_file: Option<String>,
    /// Where the electronic file is stored (a URI).
    pub e_uri: Option<String>,
}

/// A document in a box.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Document {
    pub item_no: u32,
    pub title: String,
    pub pages: Option<u32>,
    pub date: Option<String>,
    pub e_file: Option<String>,
    pub e_uri: Option<String>,
    pub added_by: String,
    pub added_at: DateTime<Utc>,
}

/// What a box holds.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Contents {
    pub archive_no: String,
    pub title: String,
    pub items: Vec<Document>,
}

/// A document found by its electronic counterpart.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DocumentRef {
    pub archive_no: String,
    pub document: Document,
}

/// The most documents added at once.
pub const MAX_ADDED: usize = 1000;

fn text(field: &str, value: Option<&str>, max: usize) -> Result<Option<String>, LocationError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.chars().count() > max || v.chars().any(char::is_control) => {
            Err(LocationError::invalid(
                field,
                format!("must be at most {max} characters, without control characters"),
            ))
        }
        Some(v) => Ok(Some(v.to_string())),
    }
}

/// The contents of a box: adding, listing, printing, and finding a document by its
/// electronic counterpart.
#[derive(Clone)]
pub struct BoxContents {
    locations: LocationService,
}

impl BoxContents {
    pub fn new(locations: LocationService) -> BoxContents {
        BoxContents { locations }
    }

    /// Adds documents to a box, all or none; answers the box's whole contents.
    pub async fn add(
        &self,
        archive_no: &str,
        documents: Vec<NewDocument>,
        actor: &str,
    ) -> Result<Contents, LocationError> {
        if documents.is_empty() || documents.len() > MAX_ADDED {
            return Err(LocationError::invalid(
                "items",
                format!("add 1 to {MAX_ADDED} documents"),
            ));
        }
        let mut checked = Vec::with_capacity(documents.len());
        for (i, d) in documents.into_iter().enumerate() {
            let at = |k: &str| format!("items[{i}].{k}");
            let title = text(&at("title"), Some(&d.title), 500)?
                .ok_or_else(|| LocationError::invalid(&at("title"), "a document has a title"))?;
            let date = match d.date.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(t) => Some(
                    parse_date(t)
                        .ok_or_else(|| {
                            LocationError::invalid(
                                &at("date"),
                                format!("'{t}' is not a date: YYYY-MM-DD"),
                            )
                        })?
                        .to_string(),
                ),
            };
            if d.item_no == Some(0) || d.pages == Some(0) {
                return Err(LocationError::invalid(
                    &at(if d.item_no == Some(0) {
                        "item_no"
                    } else {
                        "pages"
                    }),
                    "must be at least 1",
                ));
            }
            checked.push((
                d.item_no,
                title,
                d.pages,
                date,
                text(&at("e_file"), d.e_file.as_deref(), 200)?,
                text(&at("e_uri"), d.e_uri.as_deref(), 1000)?,
            ));
        }
        let locations = self.locations.clone();
        let archive_no = archive_no.to_string();
        let actor = actor.to_string();
        self.locations
            .store()
            .write(move |conn| {
                let id = box_id(conn, &archive_no)?;
                locations.refuse_disposed(conn, id, &archive_no)?;
                let mut next: u32 = conn
                    .prepare_cached("SELECT coalesce(max(item_no), 0) FROM box_documents WHERE box_id = ?1")?
                    .query_row([id], |r| r.get(0))?;
                let now = now_ms();
                let mut insert = conn.prepare_cached(
                    "INSERT INTO box_documents (box_id, item_no, title, pages, date, e_file, e_uri, actor, added_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
                for (i, (item_no, title, pages, date, e_file, e_uri)) in checked.iter().enumerate() {
                    let n = item_no.unwrap_or(next + 1);
                    match insert.execute(params![id, n, title, pages, date, e_file, e_uri, actor, now]) {
                        Err(rusqlite::Error::SqliteFailure(e, _))
                            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                        {
                            return Err(LocationError::Duplicate {
                                field: "item_no",
                                value: format!("{n} (items[{i}]): the box has it already; contents are added to, not replaced"),
                            });
                        }
                        r => {
                            r?;
                        }
                    }
                    next = next.max(n);
                }
                contents_of(conn, id, &archive_no)
            })
            .await
    }

    /// A box's contents in item order.
    pub async fn list(&self, archive_no: &str) -> Result<Contents, LocationError> {
        let archive_no = archive_no.to_string();
        self.locations
            .store()
            .read(move |conn| {
                let id = box_id(conn, &archive_no)?;
                contents_of(conn, id, &archive_no)
            })
            .await
    }

    /// The documents whose electronic counterpart has this identifier.
    pub async fn by_e_file(&self, e_file: &str) -> Result<Vec<DocumentRef>, LocationError> {
        let e_file = e_file.trim().to_string();
        if e_file.is_empty() {
            return Err(LocationError::invalid("e_file", "is empty"));
        }
        self.locations
            .store()
            .read(move |conn| {
                let rows = conn
                    .prepare_cached(&format!(
                        "SELECT x.archive_no, {DOCUMENT} FROM box_documents d JOIN boxes x ON x.id = d.box_id
                         WHERE d.e_file = ?1 ORDER BY x.archive_no, d.item_no"
                    ))?
                    .query_map([&e_file], |r| {
                        Ok(DocumentRef {
                            archive_no: r.get(0)?,
                            document: document(r, 1)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
    }

    /// The printed contents list (卷内目录) of a box.
    pub fn form(&self, contents: &Contents, printed_by: &str) -> Form {
        let pages: u32 = contents.items.iter().filter_map(|d| d.pages).sum();
        Form {
            title: "卷内目录 Contents of a box".into(),
            particulars: vec![
                ("档号 Archive number".into(), contents.archive_no.clone()),
                ("案卷题名 Title".into(), contents.title.clone()),
                (
                    "全宗 Room".into(),
                    self.locations
                        .config()
                        .room_name
                        .in_language(self.locations.config().language)
                        .to_owned(),
                ),
            ],
            columns: vec![
                Column::new("序号 No.", 14.0),
                Column::new("文件题名 Title", 78.0),
                Column::new("日期 Date", 22.0),
                Column::new("页数 Pages", 14.0),
                Column::new("电子文件 E-file", 46.0),
            ],
            rows: contents
                .items
                .iter()
                .map(|d| {
                    vec![
                        d.item_no.to_string(),
                        d.title.clone(),
                        d.date.clone().unwrap_or_default(),
                        d.pages.map(|p| p.to_string()).unwrap_or_default(),
                        d.e_file.clone().unwrap_or_default(),
                    ]
                })
                .collect(),
            after: vec![format!(
                "共 {} 件，{} 页 ({} documents, {} pages)",
                contents.items.len(),
                pages,
                contents.items.len(),
                pages
            )],
            signatures: vec!["立卷人 Compiled by".into(), "检查人 Checked by".into()],
            footer: format!(
                "stackroom · {} · {printed_by} · {}",
                self.locations.config().room_id,
                Utc::now().format("%Y-%m-%d %H:%M UTC")
            ),
        }
    }
}

const DOCUMENT: &str =
    "d.item_no, d.title, d.pages, d.date, d.e_file, d.e_uri, d.actor, d.added_at";

fn document(r: &rusqlite::Row, at: usize) -> rusqlite::Result<Document> {
    Ok(Document {
        item_no: r.get(at)?,
        title: r.get(at + 1)?,
        pages: r.get(at + 2)?,
        date: r.get(at + 3)?,
        e_file: r.get(at + 4)?,
        e_uri: r.get(at + 5)?,
        added_by: r.get(at + 6)?,
        added_at: wall(r.get(at + 7)?),
    })
}

fn contents_of(conn: &Connection, id: i64, archive_no: &str) -> Result<Contents, LocationError> {
    let title: String = conn
        .prepare_cached("SELECT title FROM boxes WHERE id = ?1")?
        .query_row([id], |r| r.get(0))?;
    let items = conn
        .prepare_cached(&format!(
            "SELECT {DOCUMENT} FROM box_documents d WHERE d.box_id = ?1 ORDER BY d.item_no"
        ))?
        .query_map([id], |r| document(r, 0))?
        .collect::<Result<_, _>>()?;
    Ok(Contents {
        archive_no: archive_no.to_string(),
        title,
        items,
    })
}
