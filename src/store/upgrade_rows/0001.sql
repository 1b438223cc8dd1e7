-- Rows as schema version 1 held them: shelves, boxes with their words, bindings, history.
INSERT INTO shelves (id, address, range_id, carriage, face, section, level, ordinal, capacity_kind, capacity, in_layout) VALUES
    (1, 'R1-C2-L-S1-L1', 1, 2, 'left', 1, 1, 10, 'boxes', 12, 1),
    (2, 'R1-C2-L-S1-L2', 1, 2, 'left', 1, 2, 11, 'mm', 900, 0);
INSERT INTO boxes (id, archive_no, epc, barcode, title, series, width_mm, fields, created_at) VALUES
    (1, '0451-H-001-00001', 'E28011700000000000000001', 'B0001', '客户档案 张伟', '0451-H-001', NULL, '{"customer_no":"C1"}', 1700000000000),
    (2, '0451-H-001-00002', NULL, NULL, 'metering contract', '0451-H-001', 60, '{}', 1700000000001),
    (3, '0451-L-002-00001', 'E28011700000000000000003', NULL, '', '0451-L-002', NULL, '{}', 1700000000002);
INSERT INTO box_words (rowid, words) VALUES (1, '0451 h 001 00001 客 户 档 案 张 伟'), (2, '0451 h 001 00002 metering contract'), (3, '0451 l 002 00001');
INSERT INTO bindings (box_id, shelf_id, source, confidence, since, last_seen) VALUES
    (1, 1, 'import', 1.0, 1700000000000, NULL),
    (2, 2, 'sweep', 0.85, 1700000000001, 1700000100000);
INSERT INTO binding_events (id, box_id, kind, from_shelf, to_shelf, source, confidence, actor, reason, at) VALUES
    (1, 1, 'bind', NULL, 'R1-C2-L-S1-L1', 'import', 1.0, 'cli', 'import of boxes.csv', 1700000000000),
    (2, 2, 'bind', NULL, 'R1-C2-L-S1-L1', 'import', 1.0, 'cli', 'import of boxes.csv', 1700000000001),
    (3, 2, 'move', 'R1-C2-L-S1-L1', 'R1-C2-L-S1-L2', 'sweep', 0.85, 'scheduler', 'sweep 1', 1700000100000);
