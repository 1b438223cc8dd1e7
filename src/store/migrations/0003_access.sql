-- API tokens: only a hash of each secret is kept; a revoked token stays for the record.
CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'archivist', 'admin')),
    hash        TEXT NOT NULL UNIQUE,       -- SHA-256 of the secret, hex
    created_at  INTEGER NOT NULL,           -- ms since the epoch
    revoked_at  INTEGER
) STRICT;
-- One live token per name.
CREATE UNIQUE INDEX tokens_live_name ON tokens (name) WHERE revoked_at IS NULL;

-- The audit trail: every change asked through the API, every carriage motion and refusal,
-- every token made or revoked. Append-only.
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,               -- ms since the epoch
    actor   TEXT NOT NULL,                  -- token name, or 'cli', 'scheduler', 'anonymous'
    kind    TEXT NOT NULL,                  -- 'request', 'motion', 'token', 'denied'
    action  TEXT NOT NULL,                  -- e.g. 'POST /api/v1/ranges/1/aisles/3/open', 'open range 1'
    outcome TEXT NOT NULL,                  -- e.g. '202', 'done', 'refused: aisle_occupied'
    detail  TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_actor ON audit (actor, at);

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
