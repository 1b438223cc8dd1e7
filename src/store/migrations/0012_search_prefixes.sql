-- Search for a word being typed without merging every list it begins (issue #20).
--
-- The title index gains FTS5 prefix indexes for prefixes of 1 to 3 characters; a longer
-- prefix is expanded into the words it begins, from box_terms: every Latin word and
-- number of 4 characters or more ever indexed (a word no box has any more finds nothing,
-- which is harmless).

CREATE VIRTUAL TABLE box_words_new USING fts5 (words, tokenize = 'unicode61 remove_diacritics 2', columnsize = 0, prefix = '1 2 3');
INSERT INTO box_words_new (rowid, words) SELECT rowid, words FROM box_words;
DROP TABLE box_words;
ALTER TABLE box_words_new RENAME TO box_words;

CREATE TABLE box_terms (term TEXT PRIMARY KEY) WITHOUT ROWID, STRICT;
CREATE VIRTUAL TABLE temp.box_words_vocabulary USING fts5vocab (main, box_words, row);
INSERT INTO box_terms (term)
    SELECT term FROM temp.box_words_vocabulary
    WHERE length(term) >= 4; -- Chinese characters are indexed one by one
DROP TABLE temp.box_words_vocabulary;
