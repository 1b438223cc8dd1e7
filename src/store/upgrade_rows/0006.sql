UPDATE sweeps SET on_loan = 1, returned_without_check_in = 0 WHERE id = 1;
INSERT INTO sweep_findings (sweep_id, seq, status, archive_no, epc, bound, found, confidence, evidence, applied) VALUES
    (1, 3, 'on_loan', '0451-H-001-00001', 'E28011700000000000000001', 'R1-C2-L-S1-L1', NULL, NULL, NULL, 0);
