-- The site's read-only replica of its rooms' boxes, and what the site knows of each room.
-- Each room is the system of record of its boxes: a row here is the box as the room's
-- change feed last gave it, replaced only by a later number of the same box.

CREATE TABLE rooms (
    room       TEXT PRIMARY KEY,
    -- Every change of the room up to this feed number is applied.
    applied    INTEGER NOT NULL DEFAULT 0,
    -- The room's newest feed number as last heard (message or page).
    heard      INTEGER NOT NULL DEFAULT 0,
    -- When a change was last applied (ms since the epoch).
    applied_at INTEGER
) STRICT;

CREATE TABLE boxes (
    id         INTEGER PRIMARY KEY,
    room       TEXT NOT NULL,
    -- The box's id in its room.
    room_box   INTEGER NOT NULL,
    -- The feed number of the box's latest change applied here.
    seq        INTEGER NOT NULL,
    archive_no TEXT NOT NULL,
    epc        TEXT,
    barcode    TEXT,
    -- on_shelf, on_loan, in_place, left_without_loan, lost; unshelved; disposed.
    state      TEXT NOT NULL,
    -- The box as the room's feed gave it (JSON).
    record     TEXT NOT NULL,
    UNIQUE (room, room_box)
) STRICT;

CREATE INDEX boxes_archive_no ON boxes (archive_no);
CREATE INDEX boxes_epc ON boxes (epc) WHERE epc IS NOT NULL;
CREATE INDEX boxes_barcode ON boxes (barcode) WHERE barcode IS NOT NULL;
CREATE INDEX boxes_room_state ON boxes (room, state);

-- Words of every box (title, archive number, barcode, field values), as a room indexes
-- them (`location::index_text`); rowid = boxes.id.
CREATE VIRTUAL TABLE box_words USING fts5 (
    words,
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '1 2 3',
    content = '',
    contentless_delete = 1
);

-- The site API's tokens (SHA-256 of the secret).
CREATE TABLE tokens (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    sha256     TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

-- What the site did for whom in a room (retrieve), and what the room answered.
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    outcome TEXT NOT NULL
) STRICT;
