-- Shelves mirror the room config; a shelf that holds boxes cannot vanish from it.
CREATE TABLE shelves (
    id        INTEGER PRIMARY KEY,
    address   TEXT NOT NULL UNIQUE,
    range_id  INTEGER NOT NULL,
    carriage  INTEGER NOT NULL,
    face      TEXT NOT NULL CHECK (face IN ('left', 'right')),
    section   INTEGER NOT NULL,
    level     INTEGER NOT NULL,
    ordinal   INTEGER NOT NULL,
    capacity_kind TEXT NOT NULL CHECK (capacity_kind IN ('boxes', 'mm')),
    capacity  INTEGER NOT NULL,
    -- 0 once the config no longer has the shelf (kept for the history's sake)
    in_layout INTEGER NOT NULL DEFAULT 1
) STRICT;
CREATE INDEX shelves_ordinal ON shelves (in_layout, ordinal);

CREATE TABLE boxes (
    id         INTEGER PRIMARY KEY,
    archive_no TEXT NOT NULL UNIQUE,
    epc        TEXT UNIQUE,
    barcode    TEXT UNIQUE,
    title      TEXT NOT NULL DEFAULT '',
    series     TEXT NOT NULL,
    width_mm   INTEGER,
    fields     TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX boxes_series ON boxes (series);

-- Words of titles and archive numbers, with CJK text split into characters so that
-- Chinese words are found as phrases. rowid = boxes.id. No column sizes: results are
-- not ranked by BM25, and a million imports skip a million docsize rows.
CREATE VIRTUAL TABLE box_words USING fts5 (words, tokenize = 'unicode61 remove_diacritics 2', columnsize = 0);

-- Where each box is now. One row per bound box.
CREATE TABLE bindings (
    box_id     INTEGER PRIMARY KEY REFERENCES boxes (id),
    shelf_id   INTEGER NOT NULL REFERENCES shelves (id),
    source     TEXT NOT NULL,
    confidence REAL NOT NULL,
    since      INTEGER NOT NULL,
    last_seen  INTEGER
) STRICT;
CREATE INDEX bindings_shelf ON bindings (shelf_id);

-- Every change of binding, kept forever.
CREATE TABLE binding_events (
    id         INTEGER PRIMARY KEY,
    box_id     INTEGER NOT NULL REFERENCES boxes (id),
    kind       TEXT NOT NULL CHECK (kind IN ('bind', 'move', 'unbind')),
    from_shelf TEXT,
    to_shelf   TEXT,
    source     TEXT NOT NULL,
    confidence REAL NOT NULL,
    actor      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    at         INTEGER NOT NULL
) STRICT;
CREATE INDEX binding_events_box ON binding_events (box_id, at);

CREATE TRIGGER binding_events_no_update BEFORE UPDATE ON binding_events
BEGIN SELECT RAISE (ABORT, 'binding history is append-only'); END;
CREATE TRIGGER binding_events_no_delete BEFORE DELETE ON binding_events
BEGIN SELECT RAISE (ABORT, 'binding history is append-only'); END;

