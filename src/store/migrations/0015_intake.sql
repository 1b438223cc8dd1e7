-- Numbering and intake (移交).

-- The last sequence number given in each series: a number is never given twice, even if
-- the box that had it is destroyed.
CREATE TABLE series_numbers (
    series  TEXT PRIMARY KEY,
    last    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- A transfer batch from a business office, received and checked item by item.
CREATE TABLE transfers (
    id            INTEGER PRIMARY KEY,
    office        TEXT NOT NULL,
    deliverer     TEXT NOT NULL,
    -- The business's completion day and the day the files are due at the archive.
    completed_on  TEXT NOT NULL,
    deadline      TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('listed', 'received', 'accepted')),
    listed_by     TEXT NOT NULL,
    listed_at     INTEGER NOT NULL,
    receiver      TEXT,
    received_at   INTEGER,
    accepted_by   TEXT,
    accepted_at   INTEGER,
    note          TEXT NOT NULL DEFAULT ''
) STRICT;

-- The items of a batch as listed, and as the archive found them.
CREATE TABLE transfer_items (
    transfer_id  INTEGER NOT NULL REFERENCES transfers (id),
    line         INTEGER NOT NULL,
    series       TEXT NOT NULL,
    title        TEXT NOT NULL,
    epc          TEXT,
    barcode      TEXT,
    width_mm     INTEGER,
    fields       TEXT NOT NULL DEFAULT '{}',
    -- 1 if the item came without being on the list.
    extra        INTEGER NOT NULL DEFAULT 0,
    -- received | missing | damaged, once checked
    found        TEXT CHECK (found IN ('received', 'missing', 'damaged')),
    note         TEXT NOT NULL DEFAULT '',
    -- Given when the batch is accepted.
    archive_no   TEXT,
    PRIMARY KEY (transfer_id, line)
) STRICT, WITHOUT ROWID;
