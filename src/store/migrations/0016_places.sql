-- Places off the shelving ([[places]]: a safe for deeds, a reading room): where a box is
-- now if it is in one (its home shelf binding stays), and every move in or out, kept.
CREATE TABLE box_places (
    box_id  INTEGER PRIMARY KEY REFERENCES boxes (id),
    place   TEXT NOT NULL,
    since   INTEGER NOT NULL
) STRICT;

CREATE TABLE place_events (
    id      INTEGER PRIMARY KEY,
    box_id  INTEGER NOT NULL REFERENCES boxes (id),
    kind    TEXT NOT NULL CHECK (kind IN ('in', 'out')),
    place   TEXT NOT NULL,
    actor   TEXT NOT NULL,
    reason  TEXT NOT NULL,
    at      INTEGER NOT NULL
) STRICT;
CREATE INDEX place_events_box ON place_events (box_id, id);
CREATE TRIGGER place_events_no_update BEFORE UPDATE ON place_events
BEGIN SELECT RAISE (ABORT, 'the history of places is append-only'); END;
CREATE TRIGGER place_events_no_delete BEFORE DELETE ON place_events
BEGIN SELECT RAISE (ABORT, 'the history of places is append-only'); END;
