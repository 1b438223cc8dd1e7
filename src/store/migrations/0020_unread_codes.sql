-- Why a shelf was not read, as a stable code the staff page words in its language (the
-- English `reason` stays for the API and the CSV), and the reader that should have read it.
-- Rows written before say `other`.
ALTER TABLE sweep_unread ADD COLUMN code TEXT NOT NULL DEFAULT 'other'
    CHECK (code IN ('reader_not_running', 'no_antenna', 'reader_failed', 'cancelled', 'other'));
ALTER TABLE sweep_unread ADD COLUMN reader TEXT;
