-- Stocktakes know loans: a box on loan is `on_loan` (not missing), one heard although it is
-- on loan is `returned_without_check_in`.
ALTER TABLE sweeps ADD COLUMN on_loan INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sweeps ADD COLUMN returned_without_check_in INTEGER NOT NULL DEFAULT 0;

CREATE TABLE sweep_findings_new (
    sweep_id    INTEGER NOT NULL REFERENCES sweeps (id),
    seq         INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('present', 'misplaced', 'missing', 'not_read', 'unknown',
                    'on_loan', 'returned_without_check_in')),
    archive_no  TEXT,
    epc         TEXT NOT NULL,
    bound       TEXT,
    found       TEXT,
    confidence  REAL,
    evidence    TEXT,
    applied     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sweep_id, seq)
) STRICT, WITHOUT ROWID;
INSERT INTO sweep_findings_new SELECT * FROM sweep_findings;
DROP TABLE sweep_findings;
ALTER TABLE sweep_findings_new RENAME TO sweep_findings;
CREATE INDEX sweep_findings_status ON sweep_findings (sweep_id, status);
