//! Search: the boxes that match what someone typed, a page at a time, with how many match
//! in all.
//!
//! The order is the one staff expect: an exact archive number, EPC or barcode first, then
//! archive numbers that begin with the text (in archive-number order), then boxes whose
//! title, archive number or barcode has the words (whole words first, then with the word
//! being typed as a prefix: see [`super::words`]), in the order they were registered.
//! Every source is read as a stream and left as soon as the page is full, so a common word
//! costs no more than a rare one. The total is counted exactly up to [`COUNTED`]; beyond
//! that it is estimated ("about 167,000") from how far into the boxes the first
//! [`COUNTED`] matches reach.

use std::collections::HashSet;

use rusqlite::{Connection, Statement, params};
use serde::Serialize;
use utoipa::ToSchema;

use super::BoxView;
use super::words::{self, Typing};

/// Which part of the results to answer.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub offset: usize,
    pub limit: usize,
}

impl Page {
    /// Pages start at most this far in: past it, a search should be narrowed.
    pub const MAX_OFFSET: usize = 10_000;
}

/// Narrowing a search: only boxes of this category (the archive number's part of that
/// name) and/or bound to a shelf of this range.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Narrow {
    pub category: Option<String>,
    pub range: Option<u16>,
    /// The year of the room's year field (`boxes.year_field`).
    pub year: Option<u16>,
}

impl Narrow {
    pub fn is_empty(&self) -> bool {
        self.category.is_none() && self.range.is_none() && self.year.is_none()
    }
}

/// A narrowed search looks at most this many matches before it stops and says "about".
pub const NARROW_SCAN: usize = 20_000;

/// One page of a search.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Found {
    pub items: Vec<BoxView>,
    /// How many boxes match in all (exact up to 1,000, else rounded to three figures).
    pub total: u64,
    /// `total` is an estimate: "about".
    pub estimated: bool,
}

/// Matches are counted exactly up to this many.
pub const COUNTED: usize = 1_000;

/// A prefix is expanded into at most this many words; one that begins more is asked as a
/// prefix (FTS5 then merges their lists: rare for four or more characters).
const EXPANSION: usize = 64;

/// Box ids in the order found, each once.
pub(super) struct Hits {
    /// Hashed with foldhash: SipHash, the standard one, took a tenth of a search's time.
    seen: HashSet<i64, foldhash::fast::RandomState>,
    pub order: Vec<i64>,
}

impl Hits {
    /// Room for `n` ids before the set grows.
    pub fn for_up_to(n: usize) -> Hits {
        Hits {
            seen: HashSet::with_capacity_and_hasher(n, Default::default()),
            order: Vec::with_capacity(n),
        }
    }

    /// The ids of `page`, as many of them as were found.
    pub fn page(&self, page: Page) -> &[i64] {
        let start = page.offset.min(self.order.len());
        let end = page.offset.saturating_add(page.limit).min(self.order.len());
        &self.order[start..end]
    }

    /// Adds `id` if new; how many there are now.
    pub fn add(&mut self, id: i64) -> usize {
        if self.seen.insert(id) {
            self.order.push(id);
        }
        self.order.len()
    }
}

/// Where matches come from, in order.
pub(super) struct Sources {
    text: String,
    upper: String,
    /// Just above every archive number that begins with `text`.
    end: String,
    /// FTS5 queries: the whole words, then with the word being typed.
    fts: Vec<String>,
    /// The query for a searched field's whole value (a customer number), if any is.
    field_sql: Option<String>,
}

/// A box destroyed is found by no search.
const KEPT: &str = "NOT EXISTS (SELECT 1 FROM boxes_disposed d WHERE d.box_id = boxes.id)";

impl Sources {
    /// The sources of `q`; `searched` are the keys of the fields whose whole value finds a
    /// box (checked identifiers: `[a-z0-9_]`).
    pub fn of(conn: &Connection, q: &str, searched: &[&str]) -> rusqlite::Result<Sources> {
        let mut fts = Vec::new();
        if let Some(m) = words::match_query(q) {
            fts.push(m.exact);
            if let Some(typing) = m.typing {
                fts.push(typing_query(conn, &typing)?);
            }
        }
        Ok(Sources {
            text: q.to_string(),
            upper: q.to_ascii_uppercase(),
            end: format!("{q}{}", char::MAX),
            fts,
            field_sql: (!searched.is_empty()).then(|| {
                format!(
                    "SELECT box_id AS id FROM box_field_values WHERE key IN ('{}') AND value = ?1
                     AND NOT EXISTS (SELECT 1 FROM boxes_disposed d WHERE d.box_id = box_field_values.box_id)",
                    searched.join("', '")
                )
            }),
        })
    }

    /// Calls `more` with every matching box id in order (an id may come more than once),
    /// for as long as it answers true. Answers the box of the broadest title query's match
    /// number [`COUNTED`] (what [`Sources::estimate`] needs), if the walk got that far into
    /// that query.
    pub fn each(
        &self,
        conn: &Connection,
        mut more: impl FnMut(i64) -> bool,
    ) -> rusqlite::Result<Option<i64>> {
        let mut exact = conn.prepare_cached(&format!(
            "SELECT id FROM boxes WHERE archive_no = ?1 AND {KEPT}
             UNION ALL SELECT id FROM boxes WHERE epc = ?2 AND {KEPT}
             UNION ALL SELECT id FROM boxes WHERE barcode = ?1 AND {KEPT}"
        ))?;
        if !drain(&mut exact, params![self.text, self.upper], &mut more)? {
            return Ok(None);
        }
        if let Some(sql) = &self.field_sql
            && !drain(&mut *conn.prepare_cached(sql)?, [&self.text], &mut more)?
        {
            return Ok(None);
        }
        let mut prefix = conn.prepare_cached(&format!(
            "SELECT id FROM boxes WHERE archive_no >= ?1 AND archive_no < ?2 AND {KEPT}
             ORDER BY archive_no"
        ))?;
        if !drain(&mut prefix, params![self.text, self.end], &mut more)? {
            return Ok(None);
        }
        let mut fts =
            conn.prepare_cached("SELECT rowid FROM box_words WHERE box_words MATCH ?1")?;
        let (mut reach, broadest) = (None, self.fts.len().saturating_sub(1));
        for (i, query) in self.fts.iter().enumerate() {
            let mut n = 0;
            let go_on = drain(&mut fts, params![query], &mut |id| {
                n += 1;
                if i == broadest && n == COUNTED {
                    reach = Some(id);
                }
                more(id)
            })?;
            if !go_on {
                break;
            }
        }
        Ok(reach)
    }

    /// How many boxes match, and whether that is an estimate, after a walk of
    /// [`Sources::each`] that stopped at `found` boxes, past [`COUNTED`], and answered
    /// `reached`: the walk is not taken again, nor the broadest query if it got far enough
    /// into it.
    pub fn estimate(
        &self,
        conn: &Connection,
        found: usize,
        reached: Option<i64>,
    ) -> rusqlite::Result<(u64, bool)> {
        // The title words' matches are spread over the boxes much as the boxes are: if
        // the first COUNTED of them reach box r of n, about COUNTED × n / r match in all.
        let mut estimate = found.max(COUNTED + 1) as f64;
        if let Some(broadest) = self.fts.last() {
            let reach = match reached {
                Some(id) => Some(id),
                None => conn
                    .prepare_cached(
                        "SELECT rowid FROM box_words WHERE box_words MATCH ?1 LIMIT 1 OFFSET ?2",
                    )?
                    .query_map(params![broadest, COUNTED as i64 - 1], |r| r.get(0))?
                    .next()
                    .transpose()?,
            };
            let last: Option<i64> = conn
                .prepare_cached("SELECT max(id) FROM boxes")?
                .query_row([], |r| r.get(0))?;
            if let (Some(reach), Some(last)) = (reach, last) {
                estimate = estimate.max(COUNTED as f64 * last as f64 / reach.max(1) as f64);
            }
        }
        Ok((three_figures(estimate), true))
    }
}

/// Steps `st` with `params`, handing each id to `more`; false once `more` said stop.
fn drain(
    st: &mut Statement<'_>,
    params: impl rusqlite::Params,
    more: &mut impl FnMut(i64) -> bool,
) -> rusqlite::Result<bool> {
    let mut rows = st.query(params)?;
    while let Some(row) = rows.next()? {
        if !more(row.get(0)?) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The FTS5 query for a word being typed: a short prefix from the prefix index, a longer
/// one as the words of the vocabulary it begins (`box_terms`; the site's replica keeps one
/// too).
pub fn typing_query(conn: &Connection, typing: &Typing) -> rusqlite::Result<String> {
    if !typing.needs_expansion() {
        return Ok(typing.prefix_query());
    }
    let end = format!("{}{}", typing.prefix, char::MAX);
    let words = conn
        .prepare_cached(
            "SELECT term FROM box_terms WHERE term >= ?1 AND term < ?2 ORDER BY term LIMIT ?3",
        )?
        .query_map(params![typing.prefix, end, EXPANSION as i64 + 1], |r| {
            r.get(0)
        })?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    // None: a word spelt otherwise in the index (diacritics): FTS5 folds the prefix too.
    Ok(if words.is_empty() || words.len() > EXPANSION {
        typing.prefix_query()
    } else {
        typing.expanded_query(&words)
    })
}

/// `n` rounded to three significant figures.
fn three_figures(n: f64) -> u64 {
    let n = n.round();
    if n < 1000.0 {
        return n as u64;
    }
    let scale = 10f64.powi(n.log10().floor() as i32 - 2);
    ((n / scale).round() * scale) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_keep_three_figures() {
        assert_eq!(three_figures(167_342.4), 167_000);
        assert_eq!(three_figures(1_001.0), 1_000);
        assert_eq!(three_figures(99_951.0), 100_000);
        assert_eq!(three_figures(512.0), 512);
    }
}
