//! The holdings: the register of every box (档案清册) as CSV or XLSX, filtered, and the
//! figures of the archive with the warnings staff act on (红黄绿灯).
//!
//! The register is read in one read transaction, in archive-number order, one row a box:
//! its number, title, series, category, state, shelf, retention class and due day, every
//! declared field, the documents it holds. XLSX is written by `rust_xlsxwriter` in its
//! constant-memory mode (rows go to a temporary file as they come), so a million boxes
//! cost little memory; a sheet holds at most 1,048,575 rows under its header.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::location::{LocationError, LocationService};
use crate::retention::due;
use crate::time::wall;

/// Where a box is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BoxState {
    OnShelf,
    OnLoan,
    /// Registered, on no shelf (and not out on loan).
    NotOnShelf,
    /// It went out through the gate without a loan.
    LeftWithoutLoan,
    /// Lost on a loan (settled so by an archivist); its record and home shelf are kept.
    Lost,
    /// In a place off the shelving (a safe).
    InPlace,
    Disposed,
}

impl BoxState {
    pub fn as_str(self) -> &'static str {
        match self {
            BoxState::OnShelf => "on_shelf",
            BoxState::OnLoan => "on_loan",
            BoxState::NotOnShelf => "not_on_shelf",
            BoxState::LeftWithoutLoan => "left_without_loan",
            BoxState::Lost => "lost",
            BoxState::InPlace => "in_place",
            BoxState::Disposed => "disposed",
        }
    }
}

/// Which boxes the register lists. Without `state`, every box not destroyed.
#[derive(Debug, Clone, Default)]
pub struct RegisterFilter {
    /// The value of the archive number's part `category`.
    pub category: Option<String>,
    /// A series key (`0451-H-001`).
    pub series: Option<String>,
    pub range: Option<u16>,
    pub state: Option<BoxState>,
}

/// The most rows under the header of one XLSX sheet.
pub const XLSX_ROWS: usize = 1_048_575;

/// The archive number's part that names a box's category, if the rule has one.
const CATEGORY: &str = "category";

/// The register and the figures.
#[derive(Clone)]
pub struct Holdings {
    locations: LocationService,
}

impl Holdings {
    pub fn new(locations: LocationService) -> Holdings {
        Holdings { locations }
    }

    fn check(&self, filter: &RegisterFilter) -> Result<(), LocationError> {
        let rule = &self.locations.config().archive_rule;
        if filter.category.is_some() && !rule.parts().any(|p| p == CATEGORY) {
            return Err(LocationError::invalid(
                "category",
                "the site's archive number has no part named 'category'",
            ));
        }
        if let Some(r) = filter.range
            && self.locations.config().layout.range(r).is_none()
        {
            return Err(LocationError::invalid(
                "range",
                format!("the room has no range {r}"),
            ));
        }
        Ok(())
    }

    /// The header of the register.
    pub fn header(&self) -> Vec<String> {
        let mut h: Vec<String> = [
            "archive_no",
            "title",
            "series",
            "category",
            "state",
            "shelf",
            "barcode",
            "epc",
            "retention",
            "due",
            "documents",
            "registered",
        ]
        .map(String::from)
        .to_vec();
        h.extend(self.locations.config().fields.0.keys().cloned());
        h
    }

    /// Calls `row` with each box of the register in archive-number order; how many.
    pub async fn each_row<F>(
        &self,
        filter: RegisterFilter,
        mut row: F,
    ) -> Result<u64, LocationError>
    where
        F: FnMut(Vec<String>) -> Result<(), LocationError> + Send + 'static,
    {
        self.check(&filter)?;
        let this = self.clone();
        self.locations
            .store()
            .read(move |conn| this.rows_in(conn, &filter, &mut row))
            .await
    }

    fn rows_in(
        &self,
        conn: &Connection,
        filter: &RegisterFilter,
        row: &mut dyn FnMut(Vec<String>) -> Result<(), LocationError>,
    ) -> Result<u64, LocationError> {
        let config = self.locations.config();
        let keys: Vec<&String> = config.fields.0.keys().collect();
        let mut st = conn.prepare(
            "SELECT x.archive_no, x.title, x.series, x.barcode, x.epc, x.fields, x.created_at,
                    s.address, s.range_id,
                    EXISTS (SELECT 1 FROM boxes_out o WHERE o.box_id = x.id),
                    dx.box_id IS NOT NULL, fl.state,
                    (SELECT count(*) FROM box_documents d WHERE d.box_id = x.id),
                    EXISTS (SELECT 1 FROM box_places p WHERE p.box_id = x.id)
             FROM boxes x LEFT JOIN bindings b ON b.box_id = x.id
             LEFT JOIN shelves s ON s.id = b.shelf_id
             LEFT JOIN boxes_disposed dx ON dx.box_id = x.id
             LEFT JOIN box_flags fl ON fl.box_id = x.id
             WHERE (?1 IS NULL OR x.series = ?1) AND (?2 IS NULL OR s.range_id = ?2)
             ORDER BY x.archive_no",
        )?;
        let mut rows = st.query(rusqlite::params![filter.series, filter.range])?;
        let mut n = 0;
        while let Some(r) = rows.next()? {
            let archive_no: String = r.get(0)?;
            let category = config.archive_rule.part_of(&archive_no, CATEGORY);
            if filter.category.is_some() && filter.category != category {
                continue;
            }
            let shelf: Option<String> = r.get(7)?;
            let flag: Option<String> = r.get(11)?;
            let state = if r.get::<_, bool>(10)? {
                BoxState::Disposed
            } else if r.get::<_, bool>(9)? {
                BoxState::OnLoan
            } else if r.get::<_, bool>(13)? {
                BoxState::InPlace
            } else if flag.as_deref() == Some("left_without_loan") {
                BoxState::LeftWithoutLoan
            } else if flag.as_deref() == Some("lost") {
                BoxState::Lost
            } else if shelf.is_some() {
                BoxState::OnShelf
            } else {
                BoxState::NotOnShelf
            };
            match filter.state {
                Some(want) if want != state => continue,
                None if state == BoxState::Disposed => continue,
                _ => {}
            }
            let fields: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default();
            let created_at: i64 = r.get(6)?;
            let (class, end) = due(config, &archive_no, &fields, created_at);
            let mut out = vec![
                archive_no.clone(),
                r.get(1)?,
                r.get(2)?,
                category.unwrap_or_default(),
                state.as_str().to_string(),
                shelf.unwrap_or_default(),
                r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                class.map(|c| c.id.clone()).unwrap_or_default(),
                end.map(|(_, d)| d.to_string()).unwrap_or_default(),
                r.get::<_, i64>(12)?.to_string(),
                wall(created_at).format("%Y-%m-%d").to_string(),
            ];
            for key in &keys {
                out.push(match fields.get(*key) {
                    None | Some(serde_json::Value::Null) => String::new(),
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                });
            }
            row(out)?;
            n += 1;
        }
        Ok(n)
    }

    /// The register as CSV (UTF-8 with a byte-order mark, so spreadsheet programs read the
    /// Chinese right).
    pub async fn csv(&self, filter: RegisterFilter) -> Result<(Vec<u8>, u64), LocationError> {
        let header = self.header();
        let out = std::sync::Arc::new(std::sync::Mutex::new(csv::Writer::from_writer(
            b"\xEF\xBB\xBF".to_vec(),
        )));
        let failed = |e: csv::Error| LocationError::invalid("format", e.to_string());
        out.lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_record(&header)
            .map_err(failed)?;
        let writer = out.clone();
        let n = self
            .each_row(filter, move |row| {
                writer
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .write_record(&row)
                    .map_err(failed)
            })
            .await?;
        let writer = std::sync::Arc::try_unwrap(out)
            .map_err(|_| LocationError::invalid("format", "the register is still being written"))?
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        let bytes = writer
            .into_inner()
            .map_err(|e| LocationError::invalid("format", e.to_string()))?;
        Ok((bytes, n))
    }

    /// The register as an XLSX workbook: one sheet, the header bold and frozen, filters on.
    pub async fn xlsx(&self, filter: RegisterFilter) -> Result<(Vec<u8>, u64), LocationError> {
        let header = self.header();
        let config = self.locations.config();
        let title = format!("{} 档案清册", config.room_name.in_language(config.language));
        let this = self.clone();
        self.check(&filter)?;
        self.locations
            .store()
            .read(move |conn| {
                let fail = |e: rust_xlsxwriter::XlsxError| LocationError::invalid("format", e.to_string());
                let mut book = rust_xlsxwriter::Workbook::new();
                let bold = rust_xlsxwriter::Format::new().set_bold();
                let sheet = book.add_worksheet_with_constant_memory().map_err(fail)?;
                sheet.set_name("档案清册").map_err(fail)?;
                sheet.set_freeze_panes(1, 0).map_err(fail)?;
                for (c, h) in header.iter().enumerate() {
                    sheet.write_string_with_format(0, c as u16, h, &bold).map_err(fail)?;
                }
                let mut r: u32 = 0;
                let n = this.rows_in(conn, &filter, &mut |row| {
                    if r as usize >= XLSX_ROWS {
                        return Err(LocationError::invalid(
                            "format",
                            format!("more than {XLSX_ROWS} boxes do not fit one sheet: filter by category, series or range, or ask for CSV"),
                        ));
                    }
                    r += 1;
                    for (c, v) in row.iter().enumerate() {
                        if !v.is_empty() {
                            sheet.write_string(r, c as u16, v).map_err(fail)?;
                        }
                    }
                    Ok(())
                })?;
                sheet
                    .autofilter(0, 0, r, header.len().saturating_sub(1) as u16)
                    .map_err(fail)?;
                book.set_properties(&rust_xlsxwriter::DocProperties::new().set_title(&title));
                Ok((book.save_to_buffer().map_err(fail)?, n))
            })
            .await
    }

    /// The figures of the archive as of `today`.
    pub async fn stats(&self, today: NaiveDate) -> Result<Stats, LocationError> {
        let this = self.clone();
        self.locations
            .store()
            .read(move |conn| this.stats_in(conn, today))
            .await
    }

    fn stats_in(&self, conn: &Connection, today: NaiveDate) -> Result<Stats, LocationError> {
        let config = self.locations.config();
        // Holdings by category and year of registration, boxes not destroyed: counted per
        // series and year by SQLite, the category read from one number of each series (a
        // series shares its category where the category is one of the series' parts; else
        // every number is read).
        let per_series = config.archive_rule.series_parts().any(|p| p == CATEGORY);
        let sql = format!(
            "SELECT {}, strftime('%Y', x.created_at / 1000, 'unixepoch') AS year, count(*)
             FROM boxes x WHERE NOT EXISTS (SELECT 1 FROM boxes_disposed d WHERE d.box_id = x.id)
             GROUP BY {}, year",
            if per_series {
                "min(x.archive_no)"
            } else {
                "x.archive_no"
            },
            if per_series {
                "x.series"
            } else {
                "x.archive_no"
            },
        );
        let mut holdings: BTreeMap<(String, i32), u64> = BTreeMap::new();
        let mut boxes = 0;
        {
            let mut st = conn.prepare(&sql)?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let no: String = r.get(0)?;
                let year: String = r.get(1)?;
                let n = count(r, 2)?;
                let category = config
                    .archive_rule
                    .part_of(&no, CATEGORY)
                    .unwrap_or_else(|| "-".into());
                *holdings
                    .entry((category, year.parse().unwrap_or(0)))
                    .or_default() += n;
                boxes += n;
            }
        }
        let holdings = holdings
            .into_iter()
            .map(|((category, year), boxes)| Holding {
                category,
                year,
                boxes,
            })
            .collect();

        // Shelf fill by range.
        let mut fill = Vec::new();
        for range in &config.layout.ranges {
            let shelves = range.shelf_count() as u64;
            let per_shelf = match range.capacity {
                crate::layout::Capacity::Boxes(n) => u64::from(n),
                crate::layout::Capacity::Mm(mm) => {
                    u64::from(mm / config.default_box_width_mm.max(1))
                }
            };
            let capacity_boxes = shelves * per_shelf;
            let bound = conn.query_row(
                "SELECT count(*) FROM bindings b JOIN shelves s ON s.id = b.shelf_id WHERE s.range_id = ?1",
                [range.id],
                |r| count(r, 0),
            )?;
            fill.push(RangeFill {
                range: range.id,
                shelves,
                boxes: bound,
                capacity: capacity_boxes,
                percent: if capacity_boxes == 0 {
                    0.0
                } else {
                    (bound as f64 * 1000.0 / capacity_boxes as f64).round() / 10.0
                },
            });
        }

        // Loans by month and kind; overdue now.
        let loans = conn
            .prepare(
                "SELECT strftime('%Y-%m', created_at / 1000, 'unixepoch') AS month, kind, count(*)
                 FROM loans GROUP BY month, kind ORDER BY month, kind",
            )?
            .query_map([], |r| {
                Ok(LoanMonth {
                    month: r.get(0)?,
                    kind: r.get(1)?,
                    loans: count(r, 2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let today_text = today.to_string();
        let soon = (today + chrono::Days::new(2)).to_string();
        let (overdue, due_soon): (u64, u64) = conn.query_row(
            "SELECT coalesce(sum(due < ?1), 0), coalesce(sum(due >= ?1 AND due <= ?2), 0)
             FROM loans WHERE state IN ('checked_out', 'return_refused')",
            [&today_text, &soon],
            |r| Ok((count(r, 0)?, count(r, 1)?)),
        )?;

        // Stocktakes: the findings of each sweep done, by month.
        let stocktakes = conn
            .prepare(
                "SELECT strftime('%Y-%m', started_at / 1000, 'unixepoch') AS month, count(*),
                        sum(present), sum(misplaced), sum(missing), sum(unknown)
                 FROM sweeps WHERE state = 'done' GROUP BY month ORDER BY month",
            )?
            .query_map([], |r| {
                Ok(StocktakeMonth {
                    month: r.get(0)?,
                    sweeps: count(r, 1)?,
                    present: count(r, 2)?,
                    misplaced: count(r, 3)?,
                    missing: count(r, 4)?,
                    unknown: count(r, 5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;

        // Disposals: boxes destroyed by month; proposals waiting.
        let disposals = conn
            .prepare(
                "SELECT strftime('%Y-%m', at / 1000, 'unixepoch') AS month, count(*)
                 FROM boxes_disposed GROUP BY month ORDER BY month",
            )?
            .query_map([], |r| {
                Ok(DisposalMonth {
                    month: r.get(0)?,
                    boxes: count(r, 1)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let waiting = conn.query_row(
            "SELECT count(*) FROM disposals WHERE state IN ('proposed', 'approved')",
            [],
            |r| count(r, 0),
        )?;

        let next_day = crate::intake::working_days_after(today, 1).to_string();
        let (transfers_overdue, transfers_due): (u64, u64) = conn.query_row(
            "SELECT coalesce(sum(deadline < ?1), 0), coalesce(sum(deadline >= ?1 AND deadline <= ?2), 0)
             FROM transfers WHERE state = 'listed'",
            [&today_text, &next_day],
            |r| Ok((count(r, 0)?, count(r, 1)?)),
        )?;
        let mut warnings = vec![
            Warning::of(
                "transfers_overdue",
                transfers_overdue,
                0,
                format!("{transfers_overdue} transfer(s) not received by their deadline"),
            ),
            Warning::yellow_if_any(
                "transfers_due",
                transfers_due,
                format!("{transfers_due} transfer(s) due by the next working day"),
            ),
            Warning::of(
                "loans_overdue",
                overdue,
                0,
                format!("{overdue} loan(s) past their due day"),
            ),
            Warning::yellow_if_any(
                "loans_due_soon",
                due_soon,
                format!("{due_soon} loan(s) due back within two days"),
            ),
            Warning::yellow_if_any(
                "disposals_waiting",
                waiting,
                format!("{waiting} disposal(s) proposed or approved, not carried out"),
            ),
        ];
        for f in &fill {
            let level = if f.percent >= 100.0 {
                Light::Red
            } else if f.percent >= 90.0 {
                Light::Yellow
            } else {
                Light::Green
            };
            warnings.push(Warning {
                kind: format!("range_{}_fill", f.range),
                level,
                count: f.boxes,
                detail: format!("range {} is {:.1} % full", f.range, f.percent),
            });
        }
        warnings.sort_by_key(|w| std::cmp::Reverse(w.level));
        Ok(Stats {
            as_of: today_text,
            boxes,
            holdings,
            fill,
            loans,
            overdue_loans: overdue,
            stocktakes,
            disposals,
            warnings,
        })
    }
}

/// A count from SQLite (an integer, or NULL for the sum of nothing).
fn count(r: &rusqlite::Row, i: usize) -> rusqlite::Result<u64> {
    Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(0).max(0) as u64)
}

/// A traffic light (红黄绿灯).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Light {
    Green,
    Yellow,
    Red,
}

/// Something staff should look at, with its light.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Warning {
    pub kind: String,
    pub level: Light,
    pub count: u64,
    pub detail: String,
}

impl Warning {
    /// Yellow if there is any, else green.
    fn yellow_if_any(kind: &str, count: u64, detail: String) -> Warning {
        Warning {
            kind: kind.into(),
            level: if count > 0 {
                Light::Yellow
            } else {
                Light::Green
            },
            count,
            detail,
        }
    }

    /// Red above `allowed`, else green.
    fn of(kind: &str, count: u64, allowed: u64, detail: String) -> Warning {
        Warning {
            kind: kind.into(),
            level: if count > allowed {
                Light::Red
            } else {
                Light::Green
            },
            count,
            detail,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Holding {
    pub category: String,
    /// The year the boxes were registered.
    pub year: i32,
    pub boxes: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RangeFill {
    pub range: u16,
    pub shelves: u64,
    pub boxes: u64,
    /// Boxes the range holds (a shelf measured in mm: in boxes of the default width).
    pub capacity: u64,
    pub percent: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LoanMonth {
    pub month: String,
    pub kind: String,
    pub loans: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StocktakeMonth {
    pub month: String,
    pub sweeps: u64,
    pub present: u64,
    pub misplaced: u64,
    pub missing: u64,
    pub unknown: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DisposalMonth {
    pub month: String,
    pub boxes: u64,
}

/// The figures of the archive.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Stats {
    pub as_of: String,
    /// Boxes held (not destroyed).
    pub boxes: u64,
    pub holdings: Vec<Holding>,
    pub fill: Vec<RangeFill>,
    pub loans: Vec<LoanMonth>,
    pub overdue_loans: u64,
    pub stocktakes: Vec<StocktakeMonth>,
    pub disposals: Vec<DisposalMonth>,
    /// Red first.
    pub warnings: Vec<Warning>,
}
