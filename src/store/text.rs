//! States and kinds stored as text columns: written by name, read back failing on a name
//! this program does not know. A row from a newer version or a hand edit is an error to
//! report, never a plausible default.

/// A day stored as `YYYY-MM-DD` in column `idx`; any other text is an error.
pub fn day(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<chrono::NaiveDate> {
    let text: String = row.get(idx)?;
    chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("'{text}' is no day (YYYY-MM-DD): {e}").into(),
        )
    })
}

/// An enum stored by name.
pub trait Named: Sized + Copy + 'static {
    /// Every value, in no particular order.
    const ALL: &'static [Self];
    /// What the value is called in the database, the API and the logs.
    fn name(self) -> &'static str;

    fn from_name(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.name() == text)
    }
}

/// Implements `ToSql` and `FromSql` for a [`Named`] enum; reading an unknown name fails
/// with the column's text and the type's name.
#[macro_export]
macro_rules! text_column {
    ($t:ty) => {
        impl rusqlite::types::ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok($crate::store::text::Named::name(*self).into())
            }
        }

        impl rusqlite::types::FromSql for $t {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                let text = value.as_str()?;
                <$t as $crate::store::text::Named>::from_name(text).ok_or_else(|| {
                    rusqlite::types::FromSqlError::Other(
                        format!("'{text}' is no {} this program knows", stringify!($t)).into(),
                    )
                })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::Named;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Colour {
        Red,
        Green,
    }

    impl Named for Colour {
        const ALL: &'static [Self] = &[Colour::Red, Colour::Green];
        fn name(self) -> &'static str {
            match self {
                Colour::Red => "red",
                Colour::Green => "green",
            }
        }
    }

    crate::text_column!(Colour);

    #[test]
    fn a_known_name_round_trips_and_an_unknown_one_fails() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (c TEXT)").unwrap();
        conn.execute("INSERT INTO t VALUES (?1)", [Colour::Green])
            .unwrap();
        conn.execute("INSERT INTO t VALUES ('blue')", []).unwrap();
        let mut rows = conn.prepare("SELECT c FROM t ORDER BY rowid").unwrap();
        let read: Vec<rusqlite::Result<Colour>> =
            rows.query_map([], |r| r.get(0)).unwrap().collect();
        assert_eq!(read[0].as_ref().unwrap(), &Colour::Green);
        let err = read[1].as_ref().unwrap_err().to_string();
        assert!(err.contains("'blue' is no Colour"), "{err}");
    }
}
