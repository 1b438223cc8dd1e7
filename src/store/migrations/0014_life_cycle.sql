-- The archive's life cycle: records corrected with a trace, typed fields, contents,
-- retention and disposal.

-- Every correction of a box's record (修改有痕迹), kept forever: one row per field changed.
CREATE TABLE box_changes (
    id      INTEGER PRIMARY KEY,
    box_id  INTEGER NOT NULL REFERENCES boxes (id),
    -- `title`, `barcode`, `epc`, `width_mm` or `fields.KEY`
    field   TEXT NOT NULL,
    before  TEXT,
    after   TEXT,
    actor   TEXT NOT NULL,
    reason  TEXT NOT NULL,
    at      INTEGER NOT NULL
) STRICT;
CREATE INDEX box_changes_box ON box_changes (box_id, id);
CREATE TRIGGER box_changes_no_update BEFORE UPDATE ON box_changes
BEGIN SELECT RAISE (ABORT, 'the corrections of a record are append-only'); END;
CREATE TRIGGER box_changes_no_delete BEFORE DELETE ON box_changes
BEGIN SELECT RAISE (ABORT, 'the corrections of a record are append-only'); END;

-- The values of the declared fields ([boxes.fields]), for lookups by value and by range:
-- text and dates as text (dates as YYYY-MM-DD sort as they should), numbers as numbers.
CREATE TABLE box_field_values (
    key     TEXT NOT NULL,
    value   ANY NOT NULL,
    box_id  INTEGER NOT NULL REFERENCES boxes (id),
    PRIMARY KEY (key, value, box_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX box_field_values_box ON box_field_values (box_id);

-- The documents in a box (卷内目录): added to, never replaced.
CREATE TABLE box_documents (
    id        INTEGER PRIMARY KEY,
    box_id    INTEGER NOT NULL REFERENCES boxes (id),
    item_no   INTEGER NOT NULL,
    title     TEXT NOT NULL,
    pages     INTEGER,
    date      TEXT,
    -- The electronic counterpart in the site's records system.
    e_file    TEXT,
    e_uri     TEXT,
    actor     TEXT NOT NULL,
    added_at  INTEGER NOT NULL,
    UNIQUE (box_id, item_no)
) STRICT;
CREATE INDEX box_documents_e_file ON box_documents (e_file) WHERE e_file IS NOT NULL;
CREATE TRIGGER box_documents_no_update BEFORE UPDATE ON box_documents
BEGIN SELECT RAISE (ABORT, 'a box''s contents are added to, not replaced'); END;
CREATE TRIGGER box_documents_no_delete BEFORE DELETE ON box_documents
BEGIN SELECT RAISE (ABORT, 'a box''s contents are added to, not replaced'); END;

-- Disposal (鉴定/销毁): proposed, approved by a second person, carried out.
CREATE TABLE disposals (
    id              INTEGER PRIMARY KEY,
    state           TEXT NOT NULL CHECK (state IN ('proposed', 'approved', 'rejected', 'carried_out')),
    reason          TEXT NOT NULL,
    proposed_by     TEXT NOT NULL,
    proposed_at     INTEGER NOT NULL,
    decided_by      TEXT,
    decided_at      INTEGER,
    decision_note   TEXT,
    carried_out_by  TEXT,
    carried_out_at  INTEGER,
    -- How it was destroyed, and who witnessed it (the certificate says both).
    method          TEXT,
    witness         TEXT
) STRICT;

-- The boxes of a disposal, as they were when proposed (the certificate lists them).
CREATE TABLE disposal_boxes (
    disposal_id  INTEGER NOT NULL REFERENCES disposals (id),
    box_id       INTEGER NOT NULL REFERENCES boxes (id),
    archive_no   TEXT NOT NULL,
    title        TEXT NOT NULL,
    class        TEXT NOT NULL,
    due          TEXT NOT NULL,
    shelf        TEXT,
    PRIMARY KEY (disposal_id, box_id)
) STRICT;
CREATE INDEX disposal_boxes_box ON disposal_boxes (box_id);

-- Boxes destroyed: off every shelf and out of search, their record and history kept.
CREATE TABLE boxes_disposed (
    box_id       INTEGER PRIMARY KEY REFERENCES boxes (id),
    disposal_id  INTEGER NOT NULL REFERENCES disposals (id),
    at           INTEGER NOT NULL
) STRICT;
CREATE TRIGGER boxes_disposed_no_delete BEFORE DELETE ON boxes_disposed
BEGIN SELECT RAISE (ABORT, 'a disposed box stays disposed'); END;
