-- A box that failed its return inspection is settled by an archivist: accepted with a note,
-- sent to repair (a place of kind `repair`), or lost. The box's flag can now say `lost`.
ALTER TABLE loan_boxes ADD COLUMN settled TEXT CHECK (settled IN ('accepted', 'repair', 'lost'));

CREATE TABLE box_flags_new (
    box_id  INTEGER PRIMARY KEY REFERENCES boxes (id),
    state   TEXT NOT NULL CHECK (state IN ('left_without_loan', 'lost')),
    since   INTEGER NOT NULL,
    note    TEXT NOT NULL DEFAULT ''
) STRICT;
INSERT INTO box_flags_new (box_id, state, since, note) SELECT box_id, state, since, note FROM box_flags;
DROP TABLE box_flags;
ALTER TABLE box_flags_new RENAME TO box_flags;
