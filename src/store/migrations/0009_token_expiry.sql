-- Tokens may expire: past expires_at (ms since the epoch) a token opens nothing. NULL: never.
ALTER TABLE tokens ADD COLUMN expires_at INTEGER;
