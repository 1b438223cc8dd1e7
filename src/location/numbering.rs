//! Numbering: the next archive number of a series, by the site's rule. A number is taken in
//! the transaction that registers its box, so numbers are given without gaps and never
//! twice (the single writer orders concurrent requests); `series_numbers` remembers the
//! last one given, so a number stays taken even if its box is destroyed.

use rusqlite::{Connection, OptionalExtension, params};

use super::{LocationError, LocationService};

impl LocationService {
    /// The last number given in `series`: the larger of what was given and what is
    /// registered (a box registered by hand with its number counts too).
    fn last_number(&self, conn: &Connection, series: &str) -> Result<u64, LocationError> {
        let given: Option<i64> = conn
            .prepare_cached("SELECT last FROM series_numbers WHERE series = ?1")?
            .query_row([series], |r| r.get(0))
            .optional()?;
        let highest: Option<String> = conn
            .prepare_cached("SELECT max(archive_no) FROM boxes WHERE series = ?1")?
            .query_row([series], |r| r.get(0))?;
        let registered = highest
            .and_then(|no| self.config.archive_rule.sequence_of(&no))
            .unwrap_or(0);
        Ok(registered.max(given.unwrap_or(0).max(0) as u64))
    }

    fn number_after(&self, series: &str, last: u64) -> Result<String, LocationError> {
        self.config
            .archive_rule
            .numbered(series, last + 1)
            .map_err(|m| LocationError::invalid("series", m))
    }

    /// Takes the next number of `series` in the caller's transaction.
    pub(crate) fn take_number(
        &self,
        conn: &Connection,
        series: &str,
    ) -> Result<String, LocationError> {
        let last = self.last_number(conn, series)?;
        let number = self.number_after(series, last)?;
        conn.prepare_cached(
            "INSERT INTO series_numbers (series, last) VALUES (?1, ?2)
             ON CONFLICT (series) DO UPDATE SET last = excluded.last",
        )?
        .execute(params![series, (last + 1) as i64])?;
        Ok(number)
    }

    /// The number the next box of `series` would be given (nothing is taken).
    pub async fn next_number(&self, series: &str) -> Result<String, LocationError> {
        let this = self.clone();
        let series = series.trim().to_string();
        self.store
            .read(move |conn| {
                let last = this.last_number(conn, &series)?;
                this.number_after(&series, last)
            })
            .await
    }
}

impl LocationService {
    /// Registers a box in the caller's transaction, numbered next in `series`, and puts it
    /// on the shelf the suggestion ranks first when `place` (none free: left unshelved).
    /// Answers its number and shelf.
    pub(crate) fn register_numbered_in(
        &self,
        conn: &Connection,
        new: super::NewBox,
        series: &str,
        provenance: &super::Provenance,
        place: bool,
    ) -> Result<(String, Option<String>), LocationError> {
        let checked = self.check_box(&super::NewBox {
            archive_no: self.take_number(conn, series)?,
            ..new
        })?;
        let now = crate::time::now_ms();
        let mut words = super::Gathered::default();
        super::insert_box(conn, &self.config.fields, &checked, now, &mut words)?;
        words.write(conn)?;
        let mut shelf = None;
        if place
            && let Some(s) = self
                .suggest_in(conn, &checked.series, checked.width_mm, 1)?
                .into_iter()
                .next()
        {
            let address = self.shelf(&s.shelf.address)?;
            self.bind_in(conn, &checked.archive_no, &address, provenance, now, true)?;
            shelf = Some(s.shelf.address);
        }
        Ok((checked.archive_no, shelf))
    }
}
