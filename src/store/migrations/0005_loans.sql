-- Circulation: loans of boxes, with approval and inspected returns.

-- A new role, approver (between archivist and admin), for loans that need approval.
CREATE TABLE tokens_new (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'archivist', 'approver', 'admin')),
    hash        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;
INSERT INTO tokens_new SELECT id, name, role, hash, created_at, revoked_at FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_new RENAME TO tokens;
CREATE UNIQUE INDEX tokens_live_name ON tokens (name) WHERE revoked_at IS NULL;

CREATE TABLE loans (
    id          INTEGER PRIMARY KEY,
    borrower    TEXT NOT NULL,
    department  TEXT NOT NULL DEFAULT '',
    purpose     TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('reading_room', 'external')),
    due         TEXT NOT NULL,              -- YYYY-MM-DD
    state       TEXT NOT NULL CHECK (state IN ('requested', 'approved', 'rejected', 'checked_out',
                    'returned', 'return_refused', 'cancelled')),
    requested_by TEXT NOT NULL,
    created_at  INTEGER NOT NULL,           -- ms since the epoch
    checked_out_at INTEGER,
    closed_at   INTEGER,
    overdue_notified TEXT                   -- the day the last overdue event went out
) STRICT;
CREATE INDEX loans_state ON loans (state);
CREATE INDEX loans_borrower ON loans (borrower);

-- The boxes of a loan; `returned_at` once the box is back, accepted.
CREATE TABLE loan_boxes (
    loan_id     INTEGER NOT NULL REFERENCES loans (id),
    box_id      INTEGER NOT NULL REFERENCES boxes (id),
    inspection  TEXT CHECK (inspection IN ('complete', 'damaged', 'pages_missing', 'wrong_box')),
    note        TEXT NOT NULL DEFAULT '',
    returned_at INTEGER,
    PRIMARY KEY (loan_id, box_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX loan_boxes_box ON loan_boxes (box_id);

-- Every transition of a loan, kept for ever.
CREATE TABLE loan_events (
    id          INTEGER PRIMARY KEY,
    loan_id     INTEGER NOT NULL REFERENCES loans (id),
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX loan_events_loan ON loan_events (loan_id, at);
CREATE TRIGGER loan_events_no_update BEFORE UPDATE ON loan_events
BEGIN SELECT RAISE (ABORT, 'loan history is append-only'); END;
CREATE TRIGGER loan_events_no_delete BEFORE DELETE ON loan_events
BEGIN SELECT RAISE (ABORT, 'loan history is append-only'); END;
