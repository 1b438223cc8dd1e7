-- The lookup register (查阅登记), in its own file attached as `register`: who was shown which
-- box, one row each, with the purpose the person gave. Rows older than lookups.keep_days
-- are rolled up into lookup_days (counts per day, token and kind of lookup) and deleted,
-- so the register stays bounded. Made at every open if missing; migration 0013 moved the
-- rows kept in the main file before.
CREATE TABLE IF NOT EXISTS register.lookups (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,           -- ms since the epoch
    actor       TEXT NOT NULL,              -- the token's name
    archive_no  TEXT NOT NULL,
    what        TEXT NOT NULL CHECK (what IN ('locate', 'box', 'location', 'history', 'label')),
    purpose     TEXT                        -- as given, or NULL
) STRICT;
-- Rows are appended in time order, so the index by time grows at its end. No index by box:
-- one keyed by archive number puts every row on a different page (8x the cost of a row,
-- measured), and a row is written for every box shown; asking who saw a box (an admin's
-- rare question) reads the register from its newest row back instead.
DROP INDEX IF EXISTS register.lookups_by_box;
CREATE INDEX IF NOT EXISTS register.lookups_by_at ON lookups (at);

CREATE TABLE IF NOT EXISTS register.lookup_days (
    day         TEXT NOT NULL,              -- YYYY-MM-DD (UTC)
    actor       TEXT NOT NULL,
    what        TEXT NOT NULL,
    lookups     INTEGER NOT NULL,
    PRIMARY KEY (day, actor, what)
) STRICT;
