INSERT INTO box_flags (box_id, state, since, note) VALUES (2, 'left_without_loan', 1700000800000, 'gate-1');
