//! Words for full-text search (SQLite FTS5).
//!
//! FTS5's `unicode61` tokenizer splits Latin text into words but takes a run of Chinese
//! characters as one token, so "供电" would not find "广州供电局合同". The indexed text
//! therefore puts a space around every CJK character, and a query turns a run of CJK
//! characters into a phrase of single characters ("供 电"), which matches them adjacent
//! and in order. Latin words and numbers match as prefixes, so results come as one types.

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

/// An FTS5 query that finds every word of `text` (all must match), or `None` when `text`
/// has no word characters at all.
pub fn match_query(text: &str) -> Option<String> {
    let mut terms: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut phrase: Vec<char> = Vec::new();
    let flush_word = |word: &mut String, terms: &mut Vec<String>| {
        if !word.is_empty() {
            terms.push(format!("\"{}\"*", word.replace('"', "\"\"")));
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
    flush_word(&mut word, &mut terms);
    flush_phrase(&mut phrase, &mut terms);
    (!terms.is_empty()).then(|| terms.join(" AND "))
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

    fn hits(conn: &Connection, q: &str) -> Vec<i64> {
        let Some(m) = match_query(q) else {
            return vec![];
        };
        let mut st = conn
            .prepare("SELECT rowid FROM w WHERE w MATCH ?1 ORDER BY rowid")
            .unwrap();
        st.query_map([m], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
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
