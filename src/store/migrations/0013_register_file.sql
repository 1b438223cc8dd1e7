-- The lookup register moves to a file of its own (attached as `register`, made by
-- register.sql): it is written on every read, and a commit to the main file makes every
-- read connection drop its page cache.
INSERT INTO register.lookups SELECT * FROM main.lookups;
DROP TABLE main.lookups;
INSERT INTO register.lookup_days SELECT * FROM main.lookup_days;
DROP TABLE main.lookup_days;
