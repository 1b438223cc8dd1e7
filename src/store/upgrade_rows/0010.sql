-- Lookups in the main file, as before the register had a file of its own (version 13).
INSERT INTO lookups (id, at, actor, archive_no, what, purpose) VALUES
    (1, 1700000000000, 'desk', '0451-H-001-00001', 'locate', 'customer asked'),
    (2, 1700000001000, 'desk', '0451-H-001-00002', 'label', NULL);
INSERT INTO lookup_days (day, actor, what, lookups) VALUES ('2023-11-01', 'desk', 'locate', 17);
