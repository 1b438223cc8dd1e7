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
//! begins before the first row. So a prefix of up to [`PREFIX_INDEXED`] characters is
//! answered from FTS5's own prefix indexes (one list each, read like a word's), and a
//! longer one is first expanded into the words it begins, from the vocabulary kept beside
//! the index (`box_terms`), and asked as those words OR-ed, which FTS5 reads as it goes.

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

/// The text to index for a box: its title, archive number, barcode and searched fields.
pub fn index_text<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::with_capacity(128);
    for part in parts {
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

/// Prefixes up to this many characters have an FTS5 prefix index (`prefix = '1 2 3'`).
pub const PREFIX_INDEXED: usize = 3;

/// Words this long or longer go into the vocabulary (`box_terms`): a prefix longer than
/// [`PREFIX_INDEXED`] can only begin those.
const VOCABULARY_MIN: usize = PREFIX_INDEXED + 1;

/// The words of `text` a prefix may be expanded into: Latin words and numbers (as the
/// tokenizer splits them, lower-cased) of at least four characters.
pub fn vocabulary(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| is_cjk(c) || !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= VOCABULARY_MIN)
        .map(str::to_lowercase)
}

/// The FTS5 queries for what someone typed; every word of it must match.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// Every word whole.
    pub exact: String,
    /// When the text ends inside a Latin word or number (it is still being typed): that
    /// word as a prefix; asked after `exact`, for what that did not fill.
    pub typing: Option<Typing>,
}

/// A query whose last word is still being typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Typing {
    /// The other terms, quoted.
    before: Vec<String>,
    /// The word being typed, lower-cased.
    pub prefix: String,
}

impl Typing {
    /// Whether the prefix is longer than FTS5's prefix indexes: then expand it.
    pub fn needs_expansion(&self) -> bool {
        self.prefix.chars().count() > PREFIX_INDEXED
    }

    /// The FTS5 query with the last word as a prefix.
    pub fn prefix_query(&self) -> String {
        self.with(format!("{}*", quote(&self.prefix)))
    }

    /// The FTS5 query with the last word as any of `words` (those it begins).
    pub fn expanded_query(&self, words: &[String]) -> String {
        let any: Vec<String> = words.iter().map(|w| quote(w)).collect();
        self.with(format!("({})", any.join(" OR ")))
    }

    fn with(&self, last: String) -> String {
        let mut terms = self.before.clone();
        terms.push(last);
        terms.join(" AND ")
    }
}

fn quote(word: &str) -> String {
    format!("\"{}\"", word.replace('"', "\"\""))
}

/// The queries for `text`, or `None` when it has no word characters at all.
pub fn match_query(text: &str) -> Option<Match> {
    let mut terms: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut phrase: Vec<char> = Vec::new();
    let flush_word = |word: &mut String, terms: &mut Vec<String>| {
        if !word.is_empty() {
            terms.push(quote(word));
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
    let prefix = word.to_lowercase();
    flush_word(&mut word, &mut terms);
    flush_phrase(&mut phrase, &mut terms);
    if terms.is_empty() {
        return None;
    }
    let exact = terms.join(" AND ");
    let typing = (!prefix.is_empty()).then(|| {
        terms.pop();
        Typing {
            before: terms,
            prefix,
        }
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
                rusqlite::params![i as i64 + 1, index_text([*t, "0451-H-012-00042"])],
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
        let typing = m.typing.map(|t| {
            if t.needs_expansion() {
                let mut words: Vec<String> = conn
                    .prepare("SELECT words FROM w")
                    .unwrap()
                    .query_map([], |r| r.get::<_, String>(0))
                    .unwrap()
                    .flat_map(|text| vocabulary(&text.unwrap()).collect::<Vec<_>>())
                    .filter(|v| v.starts_with(&t.prefix))
                    .collect();
                words.sort();
                words.dedup();
                if !words.is_empty() {
                    return t.expanded_query(&words);
                }
            }
            t.prefix_query()
        });
        for query in std::iter::once(m.exact).chain(typing) {
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
        let typing = m.typing.unwrap();
        assert_eq!(typing.prefix_query(), "\"metering\" AND \"contr\"*");
        assert_eq!(
            typing.expanded_query(&["contract".into(), "control".into()]),
            "\"metering\" AND (\"contract\" OR \"control\")"
        );
        assert!(typing.needs_expansion());
        assert!(
            !match_query("met")
                .unwrap()
                .typing
                .unwrap()
                .needs_expansion()
        );
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
            hits(&conn, "METE"),
            vec![1, 2, 3],
            "expanded: meter(ing, s)"
        );
        assert_eq!(hits(&conn, "meteri"), vec![2], "expanded: metering");
        assert_eq!(hits(&conn, "me"), vec![1, 2, 3], "from the prefix index");
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
    fn the_vocabulary_holds_the_longer_latin_words_and_numbers_lower_cased() {
        let words: Vec<String> =
            vocabulary(&index_text(["Metering 合同 of Müller", "0451-H-012-00042"])).collect();
        assert_eq!(words, ["metering", "müller", "0451", "00042"]);
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
