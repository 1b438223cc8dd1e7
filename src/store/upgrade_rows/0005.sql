INSERT INTO tokens (id, name, role, hash, created_at, revoked_at) VALUES (3, 'head', 'approver', 'aa03', 1700000000000, NULL);
INSERT INTO loans (id, borrower, department, purpose, kind, due, state, requested_by, created_at, checked_out_at, closed_at, overdue_notified) VALUES
    (1, '李娜', '营销部', 'customer complaint', 'external', '2023-12-01', 'checked_out', 'desk', 1700000000000, 1700000100000, NULL, '2023-12-02'),
    (2, 'Wang', '', 'audit', 'reading_room', '2023-11-20', 'returned', 'desk', 1700000000000, 1700000100000, 1700000900000, NULL);
INSERT INTO loan_boxes (loan_id, box_id, inspection, note, returned_at) VALUES
    (1, 1, NULL, '', NULL),
    (2, 3, 'damaged', 'water stain', 1700000900000);
INSERT INTO loan_events (id, loan_id, at, actor, from_state, to_state, note) VALUES
    (1, 1, 1700000000000, 'desk', NULL, 'requested', ''),
    (2, 1, 1700000100000, 'head', 'approved', 'checked_out', 'four eyes');
