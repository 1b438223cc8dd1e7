-- The door gate: a box that left through it without a loan is flagged until it comes back.
CREATE TABLE box_flags (
    box_id  INTEGER PRIMARY KEY REFERENCES boxes (id),
    state   TEXT NOT NULL CHECK (state IN ('left_without_loan')),
    since   INTEGER NOT NULL,
    note    TEXT NOT NULL DEFAULT ''
) STRICT;
