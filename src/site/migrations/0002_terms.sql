-- The vocabulary of the title index, as a room keeps it (`box_terms`): the words of four
-- characters or more, into which a word being typed is expanded before FTS5 is asked
-- (a prefix query merges every list it begins before its first row). Filled from the
-- index for a replica made before it.
CREATE TABLE box_terms (term TEXT PRIMARY KEY) WITHOUT ROWID, STRICT;
CREATE VIRTUAL TABLE temp.box_words_vocabulary USING fts5vocab (main, box_words, row);
INSERT INTO box_terms (term)
    SELECT term FROM temp.box_words_vocabulary WHERE length(term) >= 4;
DROP TABLE temp.box_words_vocabulary;
