//! Words for full-text search (SQLite FTS5).
//!
//! FTS5's `unicode61` tokenizer splits Latin text into words but takes a run of Chinese
//! characters as one token, so "供电" would not find "广州供电局合同". The indexed text
//! therefore puts a space around every CJK character, and a query turns a run of CJK
//! characters into a phrase of single characters ("供 电"), which matches them adjacent
//! and in order. Latin words and numbers match whole, except the last while it is still
//! being typed (no space after it yet), which also matches as a prefix, so results come as
//! one types. A whole word is asked first: FTS5 reads a word's list from its start and stops
//! at the limit however common the word, whereas a prefix merges the lists of every word it
//! begins before the first row.

/// True for characters of scripts written without spaces between words.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0x20000..=0x2FA1F) // CJK Extensions B.., Compatibility Supplement
}

/// The text to index for a box: its title, archive number and barcode.
pub fn index_text(title: &str, archive_no: &str, barcode: Option<&str>) -> String {
    let mut out = String::with_capacity(title.len() * 2 + archive_no.len() + 8);
    for part in [title, archive_no, barcode.unwrap_or("")] {
        for c in part.chars() {
            if is_cjk(c) {
                out.push(' ');
                out.push(c);
                out.push(' ');
            } else {
                out.push(c);
            }
        }
        out.push(' ');
    }
    out
}

/// The FTS5 queries for what someone typed; every word of it must match.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// Every word whole.
    pub exact: String,
    /// The same with the last word as a prefix, when the text ends inside a Latin word or
    /// number (it is still being typed); asked after `exact`, for what that did not fill.
    pub typing: Option<String>,
}

/// The queries for `text`, or `None` when it has no word characters at all.
pub fn match_query(text: &str) -> Option<Match> {
    let mut terms: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut phrase: Vec<char> = Vec::new();
    let flush_word = |word: &mut String, terms: &mut Vec<String>| {
        if !word.is_empty() {
            terms.push(format!("\"{}\"", word.replace('"', "\"\"")));
            word.clear();
        }
    };
    let flush_phrase = |phrase: &mut Vec<char>, terms: &mut Vec<String>| {
        if !phrase.is_empty() {
            let spaced: Vec<String> = phrase.iter().map(|c| c.to_string()).collect();
            terms.push(format!("\"{}\"", spaced.join(" ")));
            phrase.clear();
        }
    };
    for c in text.chars() {
        if is_cjk(c) {
            flush_word(&mut word, &mut terms);
            phrase.push(c);
        } else if c.is_alphanumeric() {
            flush_phrase(&mut phrase, &mut terms);
            word.push(c);
        } else {
            flush_word(&mut word, &mut terms);
            flush_phrase(&mut phrase, &mut terms);
        }
    }
    let typing = !word.is_empty();
    flush_word(&mut word, &mut terms);
    flush_phrase(&mut phrase, &mut terms);
    if terms.is_empty() {
        return None;
    }
    let exact = terms.join(" AND ");
    let typing = typing.then(|| {
        if let Some(last) = terms.last_mut() {
            last.push('*');
        }
        terms.join(" AND ")
    });
    Some(Match { exact, typing })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn db(titles: &[&str]) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE VIRTUAL TABLE w USING fts5 (words, tokenize = 'unicode61 remove_diacritics 2')",
        )
        .unwrap();
        for (i, t) in titles.iter().enumerate() {
            conn.execute(
                "INSERT INTO w (rowid, words) VALUES (?1, ?2)",
                rusqlite::params![i as i64 + 1, index_text(t, "0451-H-012-00042", None)],
            )
            .unwrap();
        }
        conn
    }

    /// What search finds: the whole words first, then what the word being typed begins.
    fn hits(conn: &Connection, q: &str) -> Vec<i64> {
        let Some(m) = match_query(q) else {
            return vec![];
        };
        let mut st = conn
            .prepare("SELECT rowid FROM w WHERE w MATCH ?1 ORDER BY rowid")
            .unwrap();
        let mut out: Vec<i64> = Vec::new();
        for query in std::iter::once(m.exact).chain(m.typing) {
            for id in st.query_map([query], |r| r.get(0)).unwrap() {
                let id = id.unwrap();
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        out
    }

    #[test]
    fn whole_words_are_asked_first_and_only_the_word_being_typed_is_a_prefix() {
        let m = match_query("metering contr").unwrap();
        assert_eq!(m.exact, "\"metering\" AND \"contr\"");
        assert_eq!(m.typing.as_deref(), Some("\"metering\" AND \"contr\"*"));
        let done = match_query("metering ").unwrap();
        assert_eq!((done.exact.as_str(), done.typing), ("\"metering\"", None));
        let chinese = match_query("合同").unwrap();
        assert_eq!(
            (chinese.exact.as_str(), chinese.typing),
            ("\"合 同\"", None)
        );
        let conn = db(&["meter reading", "metering contract", "meters"]);
        assert_eq!(hits(&conn, "meter"), vec![1, 2, 3], "the whole word first");
        assert_eq!(hits(&conn, "meter "), vec![1], "a finished word is whole");
        assert_eq!(hits(&conn, "metering contr"), vec![2]);
        assert_eq!(
            hits(&conn, "contr metering"),
            Vec::<i64>::new(),
            "contr is finished"
        );
    }

    #[test]
    fn chinese_words_match_as_adjacent_characters() {
        let conn = db(&[
            "广州供电局 用户合同",
            "供应商 电费 账单",
            "Customer contract Müller",
        ]);
        assert_eq!(
            hits(&conn, "供电"),
            vec![1],
            "adjacent only, not 供应商…电费"
        );
        assert_eq!(hits(&conn, "合同 广州"), vec![1]);
        assert_eq!(hits(&conn, "电"), vec![1, 2]);
        assert_eq!(hits(&conn, "contr"), vec![3], "prefix");
        assert_eq!(hits(&conn, "MULLER"), vec![3], "case and diacritics folded");
        assert_eq!(
            hits(&conn, "00042"),
            vec![1, 2, 3],
            "parts of archive numbers"
        );
    }

    #[test]
    fn hostile_queries_are_quoted() {
        let conn = db(&["a \"quoted\" title"]);
        for q in [
            "\"",
            "a\" OR \"b",
            "NEAR(",
            "*",
            "-",
            "title)",
            "^x",
            "",
            "   ",
        ] {
            let _ = hits(&conn, q); // must not fail to parse
        }
        assert_eq!(match_query(" - * "), None);
    }
}
