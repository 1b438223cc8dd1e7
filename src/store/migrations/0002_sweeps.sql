-- Inventory sweeps: one row a run (also a scheduled run that was skipped), its findings and
-- the shelves it could not read. Written once when the sweep ends; never changed after.
CREATE TABLE sweeps (
    id          INTEGER PRIMARY KEY,
    trigger     TEXT NOT NULL,              -- 'api', 'cli' or 'schedule:<name>'
    scope       TEXT NOT NULL,              -- JSON, as asked
    apply       TEXT NOT NULL CHECK (apply IN ('report', 'sync')),
    state       TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed', 'cancelled', 'skipped', 'interrupted')),
    started_at  INTEGER NOT NULL,           -- ms since the epoch
    finished_at INTEGER,
    dwell_ms    INTEGER NOT NULL,
    antennas    INTEGER NOT NULL DEFAULT 0, -- antennas in scope
    antennas_read INTEGER NOT NULL DEFAULT 0,
    reads       INTEGER NOT NULL DEFAULT 0,
    present     INTEGER NOT NULL DEFAULT 0,
    misplaced   INTEGER NOT NULL DEFAULT 0,
    missing     INTEGER NOT NULL DEFAULT 0,
    not_read    INTEGER NOT NULL DEFAULT 0,
    unknown     INTEGER NOT NULL DEFAULT 0,
    applied     INTEGER NOT NULL DEFAULT 0, -- bindings moved by apply = sync
    note        TEXT NOT NULL DEFAULT ''    -- why it failed, was skipped or cancelled
) STRICT;

CREATE TABLE sweep_findings (
    sweep_id    INTEGER NOT NULL REFERENCES sweeps (id),
    seq         INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('present', 'misplaced', 'missing', 'not_read', 'unknown')),
    archive_no  TEXT,
    epc         TEXT NOT NULL,
    bound       TEXT,                       -- shelf the binding said
    found       TEXT,                       -- shelf the reads say
    confidence  REAL,
    evidence    TEXT,                       -- JSON: [[shelf, {reads, power_mw, max_rssi_dbm}], ...]
    applied     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sweep_id, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX sweep_findings_status ON sweep_findings (sweep_id, status);

CREATE TABLE sweep_unread (
    sweep_id INTEGER NOT NULL REFERENCES sweeps (id),
    shelf    TEXT NOT NULL,
    reason   TEXT NOT NULL,
    PRIMARY KEY (sweep_id, shelf)
) STRICT, WITHOUT ROWID;
