-- The room's environment: readings with their downsampled history, and alarms.
-- Values are kept as integers in tenths (21.4 °C -> 214, 52.0 % -> 520; a binary point's
-- value is 0 or 10), which SQLite stores in one or two bytes.
CREATE TABLE env_points (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE
) STRICT;

-- Every reading, kept for environment.raw_days.
CREATE TABLE env_raw (
    point INTEGER NOT NULL REFERENCES env_points (id),
    at    INTEGER NOT NULL,                 -- ms since the epoch
    t     INTEGER,
    h     INTEGER,
    v     INTEGER,
    PRIMARY KEY (point, at)
) STRICT, WITHOUT ROWID;

-- Per minute (kept for environment.minute_days) and per hour (kept for ever): count,
-- lowest, sum and highest of each value, updated as readings arrive.
CREATE TABLE env_minute (
    point INTEGER NOT NULL REFERENCES env_points (id),
    at    INTEGER NOT NULL,                 -- s since the epoch, start of the minute
    n     INTEGER NOT NULL,
    t_min INTEGER, t_sum INTEGER, t_max INTEGER,
    h_min INTEGER, h_sum INTEGER, h_max INTEGER,
    v_min INTEGER, v_sum INTEGER, v_max INTEGER,
    PRIMARY KEY (point, at)
) STRICT, WITHOUT ROWID;

CREATE TABLE env_hour (
    point INTEGER NOT NULL REFERENCES env_points (id),
    at    INTEGER NOT NULL,                 -- s since the epoch, start of the hour
    n     INTEGER NOT NULL,
    t_min INTEGER, t_sum INTEGER, t_max INTEGER,
    h_min INTEGER, h_sum INTEGER, h_max INTEGER,
    v_min INTEGER, v_sum INTEGER, v_max INTEGER,
    PRIMARY KEY (point, at)
) STRICT, WITHOUT ROWID;

CREATE TABLE alarms (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,              -- humidity_high, smoke, sensor_stale, ...
    zone        TEXT NOT NULL,
    sensor      TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('active', 'acknowledged', 'cleared')),
    raised_at   INTEGER NOT NULL,           -- ms since the epoch
    message     TEXT NOT NULL,
    acked_at    INTEGER,
    acked_by    TEXT,
    ack_note    TEXT,
    cleared_at  INTEGER
) STRICT;
CREATE INDEX alarms_open ON alarms (state) WHERE state != 'cleared';
CREATE INDEX alarms_raised ON alarms (raised_at);
