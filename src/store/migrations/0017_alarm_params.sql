-- The numbers an alarm's message is made of (JSON: value, limit, seconds, range, ...), so
-- that a client words it in its reader's language from the alarm's kind. Alarms raised
-- before keep '{}' and their English message.
ALTER TABLE alarms ADD COLUMN params TEXT NOT NULL DEFAULT '{}';
