INSERT INTO sweeps (id, trigger, scope, apply, state, started_at, finished_at, dwell_ms, antennas, antennas_read, reads, present, misplaced, missing, not_read, unknown, applied, note) VALUES
    (1, 'schedule:nightly', '{"range":1}', 'sync', 'done', 1700000090000, 1700000100000, 100, 2, 1, 40, 1, 1, 0, 1, 1, 1, ''),
    (2, 'api', '{"room":true}', 'report', 'interrupted', 1700000200000, NULL, 100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'the controller stopped');
INSERT INTO sweep_findings (sweep_id, seq, status, archive_no, epc, bound, found, confidence, evidence, applied) VALUES
    (1, 0, 'present', '0451-H-001-00001', 'E28011700000000000000001', 'R1-C2-L-S1-L1', 'R1-C2-L-S1-L1', 1.0, '[["R1-C2-L-S1-L1",{"reads":3}]]', 0),
    (1, 1, 'misplaced', '0451-H-001-00002', 'E28011700000000000000002', 'R1-C2-L-S1-L1', 'R1-C2-L-S1-L2', 0.85, NULL, 1),
    (1, 2, 'unknown', NULL, 'E280117000000000000000FF', NULL, 'R1-C2-L-S1-L1', NULL, NULL, 0);
INSERT INTO sweep_unread (sweep_id, shelf, reason) VALUES (1, 'R1-C2-L-S1-L2', 'reader-2 did not answer');
